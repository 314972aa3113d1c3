import AutoSAM
import CardiacImaging
import Foundation
import Testing

@testable import Service

/// Labelled volumes in, validated, stored; refits run by the policy, yield to studies, and
/// produce a version that is promoted or rejected by its validation score.
@Suite(.serialized) struct RefitLoopTests {
    /// A NIfTI pair item: image + `<stem>_gt` label map.
    func niftiPair(_ n: Int, into dir: String, damage: ((inout LabelMap) -> Void)? = nil) throws -> String {
        let tmp = try makeTempFolder()
        defer { removeTempFolder(tmp) }
        let p = try Fixtures.acdcPatient(n, into: tmp)
        let patient = try ACDCPatient(folder: p)
        var (image, labels) = try patient.labelledFrame(patient.info.ed)
        damage?(&labels)
        let item = dir + "/pair\(n)"
        try FileManager.default.createDirectory(atPath: item, withIntermediateDirectories: true)
        try NIfTI.write(image, to: item + "/ed.nii.gz")
        try NIfTI.write(labels.volume, to: item + "/ed_gt.nii.gz")
        return item
    }

    @Test func labelledVolumesAreValidatedStoredAndRefitPromotesOrRejects() throws {
        let h = try ServiceHarness { c in
            c.refitEpochs = 4
            c.refitEveryVolumes = 1
            c.refitValidationVolumes = 1
        }
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        // Good items: an ACDC folder (ED + ES labelled: the validation pool), a NIfTI pair, and
        // a DICOM study with a SEG of its ED phase.
        let acdc = try Fixtures.acdcPatient(14, into: src + "/acdc")
        let pair = try niftiPair(15, into: src)
        let dicomStudy = try Fixtures.dicomStudy(16, into: src + "/dcm")
        let cine = try DicomStudyReader.readCine(folder: dicomStudy.folder, rules: h.config.seriesRules)
        let gt = try Fixtures.groundTruth(16, frame: 0)
        let onCine = LabelMap(shape: gt.shape, geometry: cine.volume.geometry, labels: gt.labels)
        try DicomSegWriter.write(onCine, frame: 0, of: cine, to: dicomStudy.folder + "/ed_seg.dcm")
        // Bad items.
        let outOfRange = try niftiPair(17, into: src + "/bad_range") { $0.labels[$0.labels.count / 2] = 7 }
        let background = try niftiPair(18, into: src + "/bad_empty") { $0.labels = [UInt8](repeating: 0, count: $0.labels.count) }
        let wrongGrid = try niftiPair(19, into: src + "/bad_grid")
        let other = try NIfTI.readLabelMap(pair + "/ed_gt.nii.gz")
        try NIfTI.write(other, to: wrongGrid + "/ed_gt.nii.gz")  // patient 15's map beside patient 19's image
        try "x".write(toFile: src + "/loose_file.nii.gz", atomically: true, encoding: .utf8)

        try h.start()
        let labels = h.config.labelsPath
        let fm = FileManager.default
        try fm.copyItem(atPath: acdc, toPath: labels + "/acdc_item")
        #expect(try waitFor(60) { try h.journal().refits().first?.outcome != nil })
        // One case, the validation pool: nothing to train on yet.
        #expect(try h.journal().refits().first?.outcome == "skipped")
        try fm.copyItem(atPath: outOfRange, toPath: labels + "/out_of_range")
        try fm.copyItem(atPath: background, toPath: labels + "/only_background")
        try fm.copyItem(atPath: wrongGrid, toPath: labels + "/wrong_grid")
        try fm.copyItem(atPath: src + "/loose_file.nii.gz", toPath: labels + "/loose_file.nii.gz")
        try fm.copyItem(atPath: pair, toPath: labels + "/pair_item")
        try fm.copyItem(atPath: dicomStudy.folder, toPath: labels + "/dicom_item")
        // A deadline, not a speed check: generous for a loaded machine.
        #expect(try waitFor(300) {
            let r = try h.journal().refits()
            return try h.journal().labels().count == 7 && r.count >= 2 && r.allSatisfy { $0.outcome != nil } && !studiesPending(h)
        }, "\(String(describing: try? h.journal().labels()))\n\(String(describing: try? h.journal().refits()))")
        #expect(h.stop())
        let j = try h.journal()
        let byName = Dictionary(uniqueKeysWithValues: try j.labels().map { ($0.name, $0) })
        #expect(byName["acdc_item"]?.state == "accepted" && byName["acdc_item"]?.volumes == 2)
        #expect(byName["pair_item"]?.state == "accepted" && byName["pair_item"]?.volumes == 1)
        #expect(byName["dicom_item"]?.state == "accepted" && byName["dicom_item"]?.volumes == 1, "\(byName["dicom_item"]?.reason ?? "")")
        #expect(byName["out_of_range"]?.reason?.contains("value 7") == true, "\(byName["out_of_range"]?.reason ?? "")")
        #expect(byName["only_background"]?.reason?.contains("only background") == true)
        #expect(byName["wrong_grid"]?.reason?.contains("grid mismatch") == true, "\(byName["wrong_grid"]?.reason ?? "")")
        #expect(byName["loose_file.nii.gz"]?.reason?.contains("is a single file") == true)
        for bad in ["out_of_range", "only_background", "wrong_grid", "loose_file.nii.gz"] {
            #expect(fm.fileExists(atPath: h.config.failedPath + "/labels/\(bad)/reason.txt"))
        }
        // Three cases: the first is the fixed pool, the other two trained the candidate(s).
        let store = try TrainingStore(root: h.config.trainingPath)
        #expect(try store.cases().count == 3 && store.validationCases() == ["case0001"])
        let refits = try j.refits()
        let trained = refits.filter { $0.outcome == "promoted" || $0.outcome == "rejected" }
        #expect(!trained.isEmpty, "\(refits)")
        let models = try ModelStore(root: h.config.modelsPath)
        for r in trained {
            let v = try #require(r.candidateVersion)
            let m = try models.metrics(v)
            let cand = try #require(m.validation).meanDice, cur = try #require(m.parentValidation).meanDice
            // The decision follows the rule: promoted exactly when not worse by more than the tolerance.
            #expect((r.outcome == "promoted") == (cand >= cur - h.config.refitTolerance), "\(r)")
            #expect(m.validationCases == ["case0001"])
        }
        if let promoted = trained.last(where: { $0.outcome == "promoted" })?.candidateVersion {
            #expect(try models.current() == promoted)
        }
    }

    func studiesPending(_ h: ServiceHarness) -> Bool {
        ((try? h.journal().studies().contains { $0.state != .done && $0.state != .failed }) ?? false)
    }

    /// A study arriving during a refit is segmented between two epochs, before the refit ends.
    @Test func refitYieldsToArrivingStudies() throws {
        let h = try ServiceHarness { c in
            c.refitEpochs = 60
            c.refitEveryVolumes = 3
        }
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let a = try Fixtures.acdcPatient(20, into: src + "/l")
        let b = try niftiPair(21, into: src + "/l")
        let study = try Fixtures.acdcPatient(22, into: src + "/s")
        try h.start()
        try FileManager.default.copyItem(atPath: a, toPath: h.config.labelsPath + "/a")
        try FileManager.default.copyItem(atPath: b, toPath: h.config.labelsPath + "/b")
        try #require(try waitFor(90) { try h.journal().refits().first != nil })
        usleep(500_000)
        try FileManager.default.copyItem(atPath: study, toPath: h.inbox + "/during_refit")
        #expect(try h.waitFinished(["during_refit"], timeout: 90))
        let refit = try #require(try h.journal().refits().first)
        let rec = try #require(try h.journal().studies().first)
        #expect(rec.state == .done)
        #expect(refit.finishedAt == nil || refit.finishedAt! > rec.finishedAt!, "the refit ended before the study: \(refit)")
        #expect(h.stop(timeout: 120))
        // Stopping mid-refit closes it as aborted (or it had finished).
        let after = try #require(try h.journal().refits().first)
        #expect(after.outcome != nil)
    }
}
