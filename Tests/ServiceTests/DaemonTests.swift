import AutoSAM
import CardiacImaging
import Foundation
import QC
import Testing

@testable import Service

/// The daemon end to end, in-process: studies of every kind in, outputs out, the journal and
/// the folders telling the same story.
@Suite(.serialized) struct DaemonTests {
    /// Checks one finished study's outputs against its input and against stats recomputed from
    /// the written label maps.
    func checkOutputs(_ h: ServiceHarness, study: String, input: Volume, edES: (Int, Int)?, dicom: Bool = false) throws {
        let out = h.config.outboxPath + "/" + study
        let fm = FileManager.default
        for f in ["labels_ed.nii.gz", "labels_es.nii.gz", "stats.json", "provenance.json", "qc.png"] {
            #expect(fm.fileExists(atPath: out + "/" + f), "\(study): \(f) missing")
        }
        let ed = try NIfTI.readLabelMap(out + "/labels_ed.nii.gz"), es = try NIfTI.readLabelMap(out + "/labels_es.nii.gz")
        // Exactly the input's grid: shape, and the stored qform/sform.
        #expect(ed.shape == input.shape.spatial && es.shape == input.shape.spatial)
        if dicom {
            // NIfTI-1 stores the DICOM geometry in float32: equal within its precision.
            #expect(ed.geometry.affine.maxAbsDifference(input.geometry.affine) < 1e-4)
        } else {
            #expect(ed.geometry.nifti == input.geometry.nifti, "\(study): label geometry differs from the input's")
            #expect(ed.geometry.affine.maxAbsDifference(input.geometry.affine) == 0)
        }
        let stats = try JSONDecoder().decode(CineStats.self, from: try Data(contentsOf: URL(fileURLWithPath: out + "/stats.json")))
        let prov = try JSONDecoder().decode(Provenance.self, from: try Data(contentsOf: URL(fileURLWithPath: out + "/provenance.json")))
        if let (e, s) = edES {
            #expect(stats.report.edFrame == e + 1 && stats.report.esFrame == s + 1)
            #expect(stats.phaseSelection == nil)
        } else {
            // ED/ES from the LV curve: the largest and smallest of the recorded curve.
            let curve = try #require(stats.phaseSelection).lvVolumes
            #expect(curve.count == input.shape.nt)
            #expect(curve[stats.report.edFrame! - 1] == curve.max() && curve[stats.report.esFrame! - 1] == curve.min())
        }
        // The numbers are those of the label maps written beside them.
        let again = try ClinicalStats.report(
            ed: ed, es: es, heightCm: stats.report.heightCm, weightKg: stats.report.weightKg, subject: stats.report.subject,
            edFrame: stats.report.edFrame, esFrame: stats.report.esFrame)
        if dicom {
            for (a, b) in [(again.lv.edv, stats.report.lv.edv), (again.lv.esv, stats.report.lv.esv), (again.rv.edv, stats.report.rv.edv),
                           (again.lvMass, stats.report.lvMass)] {
                #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "\(a) vs \(b)")
            }
            #expect(again.ed.lvVoxels == stats.report.ed.lvVoxels && again.es.myoVoxels == stats.report.es.myoVoxels)
        } else {
            #expect(again == stats.report)
        }
        // The head's uncertainty: a score per segmented ED/ES frame, one entry per slice, the
        // study's score the larger of ED's and ES's, the flag against the threshold, and the
        // same score and flag in provenance and in the study's cohort row.
        let review = try #require(stats.review, "\(study): no uncertainty in stats.json")
        let ed1 = String(stats.report.edFrame!), es1 = String(stats.report.esFrame!)
        let edScore = try #require(review.frames[ed1]), esScore = try #require(review.frames[es1])
        #expect(review.uncertainty == max(edScore, esScore) && edScore > 0 && edScore.isFinite)
        #expect(review.slices[ed1]?.count == input.shape.nz && review.slices[es1]?.count == input.shape.nz)
        #expect(review.slices[ed1]!.reduce(0) { $0 + $1.heartPixels } == again.ed.lvVoxels + again.ed.myoVoxels + again.ed.rvVoxels)
        #expect(review.threshold == h.config.reviewUncertainty && review.review == (review.uncertainty > review.threshold))
        #expect(prov.uncertainty == review.uncertainty && prov.review == review.review)
        let rows = try String(contentsOfFile: h.config.outboxPath + "/cohort.csv", encoding: .utf8).split(separator: "\n")
        let row = try #require(rows.first { $0.hasPrefix("\(prov.journalId),") }).split(separator: ",", omittingEmptySubsequences: false)
        #expect(rows[0].hasSuffix(",uncertainty,review") && row.count == rows[0].split(separator: ",").count)
        #expect(Double(row[row.count - 2]).map { abs($0 - review.uncertainty) < 1e-4 } == true && row.last! == (review.review ? "yes" : "no"))
        // Something was segmented (the test head is crude, but not blank).
        #expect(stats.report.ed.lvVoxels + stats.report.ed.myoVoxels + stats.report.ed.rvVoxels > 0, "\(study): empty segmentation")
        #expect(stats.report.lv.edv.isFinite && stats.report.lvMass.isFinite && stats.report.sliceAreasED.count == input.shape.nz)
        let trainedOn = try HeadModel.load(h.config.head).1.encoder
        #expect(prov.software == "autosam \(BuildInfo.version)" && prov.encoder.name == "demo" && prov.encoder.identity == trainedOn)
        #expect(prov.head.version.hasPrefix("file:") && prov.frames.ed == stats.report.edFrame && prov.timings["segment_s"] != nil)
        let qc = try DecodedPicture.read(out + "/qc.png")
        #expect(qc.width > 100 && qc.height > 100)
        if dicom {
            #expect(fm.fileExists(atPath: out + "/seg_ed.dcm") && fm.fileExists(atPath: out + "/seg_es.dcm"))
            let seg = try DicomSegReader.read(out + "/seg_ed.dcm")
            let back = try seg.labelMap(on: input.geometry, slices: input.shape.nz)
            #expect(back.labels == ed.labels, "the SEG and the NIfTI label map disagree")
            // The measurement report and the QC picture, in the input's study (what they hold:
            // DICOMCrossCheckTests, read by highdicom and dciodvfy).
            let sr = try DicomFile.readHeader(out + "/sr.dcm"), qcDicom = try DicomFile.readHeader(out + "/qc.dcm")
            let studyUID = try DicomFile.readHeader(out + "/seg_ed.dcm").studyInstanceUID
            #expect(sr.sopClassUID == "1.2.840.10008.5.1.4.1.1.88.22" && sr.studyInstanceUID == studyUID)
            #expect(qcDicom.sopClassUID == "1.2.840.10008.5.1.4.1.1.7" && qcDicom.studyInstanceUID == studyUID)
            #expect(qcDicom.columns == qc.width && qcDicom.rows == qc.height && qcDicom.samplesPerPixel == 3)
        } else {
            #expect(!fm.fileExists(atPath: out + "/sr.dcm") && !fm.fileExists(atPath: out + "/qc.dcm"))
        }
    }

    @Test func niftiACDCAndDicomStudiesComeOutWithTheInputGeometry() throws {
        let h = try ServiceHarness(quiet: 0.6)
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        // Sources prepared outside the inbox.
        let cine = try Fixtures.shortCine(2, to: src + "/cine_study.nii.gz")
        let acdc = try Fixtures.acdcPatient(3, into: src + "/acdc")
        let acdcInfo = try ACDCPatient(folder: acdc).info
        let acdcImage = try NIfTI.read(acdc + String(format: "/patient003_frame%02d.nii.gz", acdcInfo.ed))
        let dicomSrc = try Fixtures.dicomStudy(4, into: src + "/dicom")
        let dicomCine = try DicomStudyReader.readCine(folder: dicomSrc.folder, rules: h.config.seriesRules)
        try h.start()
        // A single NIfTI file appears at once (written elsewhere, then renamed in).
        try FileManager.default.copyItem(atPath: src + "/cine_study.nii.gz", toPath: h.inbox + "/.cine_study.nii.gz.part")
        #expect(rename(h.inbox + "/.cine_study.nii.gz.part", h.inbox + "/cine_study.nii.gz") == 0)
        // The ACDC folder and the DICOM study are copied file by file, slowly.
        try slowCopy(acdc, to: h.inbox + "/patient003", pause: 0.05)
        try slowCopy(dicomSrc.folder, to: h.inbox + "/dicom_study", pause: 0.05)
        // While the DICOM copy was going on, nothing of it was claimed early.
        let ok = try h.waitFinished(["cine_study.nii.gz", "patient003", "dicom_study"], timeout: 120)
        #expect(ok, "not finished: \(String(describing: try? h.states()))\n\(h.logLines.all.suffix(20).joined(separator: "\n"))")
        #expect(h.stop())
        let states = try h.states()
        #expect(states.values.allSatisfy { $0 == .done }, "\(states)\n\(h.logLines.all.joined(separator: "\n"))")
        FileHandle.standardError.write(Data(h.logLines.all.filter { $0.contains("done in") }.joined(separator: "\n").utf8 + [10]))
        let records = try h.journal().studies()
        #expect(records.count == 3 && records.allSatisfy { $0.attempts == 1 })
        try checkOutputs(h, study: "cine_study", input: cine, edES: nil)
        try checkOutputs(h, study: "patient003", input: acdcImage, edES: (acdcInfo.ed - 1, acdcInfo.es - 1))
        try checkOutputs(h, study: "dicom_study", input: dicomCine.volume, edES: nil, dicom: true)
        // Inputs archived, inbox and work empty, one cohort row per study.
        let fm = FileManager.default
        #expect(Set(try fm.contentsOfDirectory(atPath: h.config.archivePath)) == ["cine_study.nii.gz", "patient003", "dicom_study"])
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
        #expect(try fm.contentsOfDirectory(atPath: h.config.workPath).isEmpty)
        let csv = try String(contentsOfFile: h.config.outboxPath + "/cohort.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 4 && csv[0].hasPrefix("journal_id,kind,model_version,processed_at,subject"))
        #expect(Set(csv.dropFirst().map { $0.split(separator: ",")[0] }) == Set(records.map { "\($0.id)" }))
        // The DICOM study was claimed once, after the copy ended: all its files came along.
        let dicomFiles = try fm.subpathsOfDirectory(atPath: h.config.archivePath + "/dicom_study").count
        #expect(dicomFiles == (try fm.subpathsOfDirectory(atPath: dicomSrc.folder).count))
        // Logs name studies by number only.
        #expect(!h.logLines.all.contains { $0.contains("patient003") || $0.contains("cine_study") || $0.contains("dicom_study") })
    }

    /// The issue's end-to-end check "stats match the phantoms' truth when the head is good",
    /// with the best head there is: the phantom's own label maps (`ReferenceLabeller`). Whole
    /// stacks of a NIfTI cine, an ACDC folder and a DICOM study go through the daemon; the ED
    /// and ES frames it picks, its label maps and its LV stats must agree with the phantom's
    /// truth within the tolerances (LV volumes 5%, EF 3 points). What this checks is everything
    /// after the head: reading each input kind, its geometry, phase selection, the stats.
    @Test func withAReferenceSegmentationEveryInputKindsStatsMatchPhantomTruth() throws {
        let h = try ServiceHarness(quiet: 0.6)
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let patients = [("cine_study", 2), ("patient003", 3), ("dicom_study", 4)]
        _ = try Fixtures.shortCine(2, to: src + "/cine_study.nii.gz", allSlices: true)
        let acdc = try Fixtures.acdcPatient(3, into: src + "/acdc", allSlices: true)
        let dicom = try Fixtures.dicomStudy(4, into: src + "/dicom", allSlices: true)
        let reference = try ReferenceLabeller(patients: patients.map(\.1)) { Fixtures.shortFrames($0) + [$0.edFrame - 1, $0.esFrame - 1] }
        try h.start(frameLabeller: reference.label)
        try FileManager.default.copyItem(atPath: src + "/cine_study.nii.gz", toPath: h.inbox + "/.cine_study.nii.gz.part")
        #expect(rename(h.inbox + "/.cine_study.nii.gz.part", h.inbox + "/cine_study.nii.gz") == 0)
        try slowCopy(acdc, to: h.inbox + "/patient003", pause: 0.01)
        try slowCopy(dicom.folder, to: h.inbox + "/dicom_study", pause: 0.01)
        // Journal names are the inbox names; output folders drop ".nii.gz".
        let names = ["cine_study.nii.gz", "patient003", "dicom_study"]
        let ok = try h.waitFinished(names, timeout: 120)
        #expect(ok, "not finished: \(String(describing: try? h.states()))")
        #expect(h.stop())
        let states = try h.states()
        #expect(names.allSatisfy { states[$0] == .done }, "\(states)\n\(h.logLines.all.suffix(20).joined(separator: "\n"))")
        for (study, n) in patients {
            let out = h.config.outboxPath + "/" + study
            let truth = try Fixtures.phantom(n).truth
            let r = try JSONDecoder().decode(CineStats.self, from: try Data(contentsOf: URL(fileURLWithPath: out + "/stats.json"))).report
            // Frames as the phantom numbers them (the cine and the DICOM study keep 4 frames).
            let original = study == "patient003" ? { (f: Int) in f - 1 } : { (f: Int) in Fixtures.shortFrames(truth)[f - 1] }
            #expect(original(r.edFrame!) == truth.edFrame - 1 && original(r.esFrame!) == truth.esFrame - 1,
                    "\(study): ED/ES frames \(r.edFrame!), \(r.esFrame!)")
            // The written label maps are the reference's, voxel for voxel.
            let ed = try NIfTI.readLabelMap(out + "/labels_ed.nii.gz").labels
            let edTruth = PhantomGenerator.groundTruth(patient: n, seed: Fixtures.seed, frame: truth.edFrame - 1).labels
            let differing = ed.count == edTruth.count ? zip(ed, edTruth).filter { $0 != $1 }.count : -1
            #expect(differing == 0, "\(study): \(differing) ED voxels differ from the reference (-1: another grid size)")
            let e = truth.lvErrors(edv: r.lv.edv, esv: r.lv.esv, ef: r.lv.ef)
            FileHandle.standardError.write(Data(String(format: "%@ (%@): LV EDV %.1f / %.1f mL, ESV %.1f / %.1f mL, volume error %.2f%%, EF error %.2f points\n",
                                                       study, truth.group, r.lv.edv, truth.ed.lvDiscML, r.lv.esv, truth.es.lvDiscML, e.volume * 100, e.ef).utf8))
            #expect(PhantomTruth.withinTolerances(e), "\(study): LV volume error \(e.volume), EF error \(e.ef)")
        }
    }

    @Test func markerClaimsAtOnceAndFramesAllWritesTheWholeCine() throws {
        let h = try ServiceHarness(quiet: 3600) { $0.frames = .all }
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let cine = try Fixtures.shortCine(6, to: src + "/c.nii.gz")
        try h.start()
        try FileManager.default.createDirectory(atPath: h.inbox + "/marked", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: src + "/c.nii.gz", toPath: h.inbox + "/marked/cine.nii.gz")
        try Data().write(to: URL(fileURLWithPath: h.inbox + "/marked/.ready"))
        // A quiet period of an hour: only the marker can have claimed it.
        #expect(try h.waitFinished(["marked"], timeout: 90))
        #expect(h.stop())
        #expect(try h.states()["marked"] == .done)
        let all = try NIfTI.read(h.config.outboxPath + "/marked/labels_all.nii.gz")
        #expect(all.shape == GridShape(cine.shape.nx, cine.shape.ny, cine.shape.nz, cine.shape.nt))
        #expect(all.geometry.nifti == cine.geometry.nifti)
        let ed = try NIfTI.readLabelMap(h.config.outboxPath + "/marked/labels_ed.nii.gz")
        let stats = try JSONDecoder().decode(CineStats.self, from: try Data(contentsOf: URL(fileURLWithPath: h.config.outboxPath + "/marked/stats.json")))
        let t = stats.report.edFrame! - 1
        #expect(Array(all.floats(range: (t * ed.labels.count)..<((t + 1) * ed.labels.count)).map { UInt8($0) }) == ed.labels)
    }

    /// A read-only outbox: the study is neither archived nor failed, its input is kept, and it
    /// completes once the outbox can be written again.
    @Test func readOnlyOutboxIsRetriedNotArchived() throws {
        let h = try ServiceHarness()
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let patient = try Fixtures.acdcPatient(7, into: src)
        try h.start()
        let outbox = h.config.outboxPath
        try lockFolder(outbox)
        try slowCopy(patient, to: h.inbox + "/p7", pause: 0)
        #expect(try waitFor(60) { try h.journal().studies().first?.writeFailures ?? 0 >= 2 }, "\(h.logLines.all.joined(separator: "\n"))")
        let rec = try #require(try h.journal().studies().first)
        #expect(rec.state == .retry || rec.state == .claimed || rec.state == .processing)
        #expect(FileManager.default.fileExists(atPath: rec.workPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.archivePath).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.failedPath).isEmpty)
        #expect(rec.reason?.contains("outbox") == true || rec.reason?.contains("staging") == true, "\(rec.reason ?? "")")
        try unlockFolder(outbox)
        #expect(try h.waitFinished(["p7"], timeout: 60))
        #expect(h.stop())
        let done = try #require(try h.journal().studies().first)
        #expect(done.state == .done && done.attempts == 1)
        // Each retry is numbered as the attempt it is, not "attempt 1" again.
        let starts = h.logLines.all.filter { $0.contains("study #\(done.id) (") && $0.contains("attempt") }
        #expect(starts.count == done.writeFailures + 1 && starts.last?.hasSuffix("attempt \(done.writeFailures + 1)") == true, "\(starts)")
        #expect(FileManager.default.fileExists(atPath: outbox + "/p7/labels_ed.nii.gz"))
        #expect(FileManager.default.fileExists(atPath: h.config.archivePath + "/p7"))
    }

    /// Whether this process may mount a small tmpfs (root with CAP_SYS_ADMIN): the full-disk test needs one.
    static let canMountTmpfs: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        guard let dir = try? makeTempFolder("autosam-mnt") else { return false }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard (try? runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]))?.status == 0 else { return false }
        _ = try? runTool("/bin/umount", [dir])
        return true
    }()

    /// A full outbox (a 48 KiB tmpfs): the study is neither archived nor failed, and completes
    /// once the outbox has room again.
    @Test(.enabled(if: DaemonTests.canMountTmpfs, "needs root to mount a small tmpfs as the outbox"))
    func fullOutboxIsRetriedNotArchived() throws {
        let h = try ServiceHarness()
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let patient = try Fixtures.acdcPatient(23, into: src)
        let outbox = h.config.outboxPath
        try FileManager.default.createDirectory(atPath: outbox, withIntermediateDirectories: true)
        try #require(try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=48k", "tmpfs", outbox]).status == 0)
        defer { _ = try? runTool("/bin/umount", ["-l", outbox]) }
        try h.start()
        try slowCopy(patient, to: h.inbox + "/p23", pause: 0)
        #expect(try waitFor(60) { try h.journal().studies().first?.writeFailures ?? 0 >= 2 }, "\(h.logLines.all.joined(separator: "\n"))")
        let rec = try #require(try h.journal().studies().first)
        #expect(rec.state != .done && rec.state != .failed)
        #expect(rec.reason?.contains("cannot write") == true, "\(rec.reason ?? "")")
        #expect(FileManager.default.fileExists(atPath: rec.workPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.archivePath).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: h.config.failedPath).isEmpty)
        // Room again.
        try #require(try runTool("/bin/mount", ["-o", "remount,size=64m", outbox]).status == 0)
        #expect(try h.waitFinished(["p23"], timeout: 60))
        #expect(h.stop())
        #expect(try h.states()["p23"] == .done)
        #expect(FileManager.default.fileExists(atPath: outbox + "/p23/qc.png"))
        #expect(FileManager.default.fileExists(atPath: h.config.archivePath + "/p23"))
    }

    /// Studies of many broken kinds end in failed/ with a reason a person can read, while the
    /// valid studies dropped among them complete.
    @Test func malformedInputsFailWithReasonsWhileValidOnesComplete() throws {
        let h = try ServiceHarness(quiet: 0.3)
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let bad = try BadInputs.make(in: src + "/bad")
        let goodA = try Fixtures.acdcPatient(8, into: src + "/good")
        try FileManager.default.moveItem(atPath: goodA, toPath: src + "/good/valid_a")
        _ = try Fixtures.shortCine(9, to: src + "/good/valid_b.nii.gz")
        try h.start()
        let fm = FileManager.default
        var names: [String] = []
        for (i, item) in bad.enumerated() {
            try fm.copyItem(atPath: src + "/bad/" + item.name, toPath: h.inbox + "/" + item.name)
            names.append(item.name)
            if i == bad.count / 3 { try fm.copyItem(atPath: src + "/good/valid_a", toPath: h.inbox + "/valid_a"); names.append("valid_a") }
            if i == 2 * bad.count / 3 { try fm.copyItem(atPath: src + "/good/valid_b.nii.gz", toPath: h.inbox + "/valid_b.nii.gz"); names.append("valid_b.nii.gz") }
        }
        #expect(bad.count >= 50)
        let finished = try h.waitFinished(names, timeout: 150)
        #expect(finished, "\(String(describing: (try? h.states())?.filter { $0.value != .done && $0.value != .failed }))")
        #expect(h.stop())
        let states = try h.states()
        #expect(states["valid_a"] == .done && states["valid_b.nii.gz"] == .done)
        for item in bad {
            #expect(states[item.name] == .failed, "\(item.name) ended \(String(describing: states[item.name]))")
            let dir = h.config.failedPath + "/" + Journal.stem(item.name)
            let reason = (try? String(contentsOfFile: dir + "/reason.txt", encoding: .utf8)) ?? ""
            #expect(reason.lowercased().contains(item.expect.lowercased()), "\(item.name): expected '\(item.expect)' in:\n\(reason)")
            #expect(fm.fileExists(atPath: dir + "/" + item.name), "\(item.name): input not kept in failed/")
        }
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
    }

    @Test func statusReadsTheJournalWhileTheDaemonRuns() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let h = try ServiceHarness()
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let p = try Fixtures.acdcPatient(10, into: src)
        try h.start()
        try "junk".write(toFile: h.inbox + "/notes.txt", atomically: true, encoding: .utf8)
        try slowCopy(p, to: h.inbox + "/p10", pause: 0)
        #expect(try h.waitFinished(["p10", "notes.txt"], timeout: 60))
        let toml = h.root + "/autosam.toml"
        try "[paths]\ndata = \"\(h.config.data)\"\n".write(toFile: toml, atomically: true, encoding: .utf8)
        let (rc, out) = try runTool(bin, ["status", "--config", toml, "--json"])
        #expect(rc == 0, "\(out)")
        let s = try JSONDecoder().decode(ServiceStatus.self, from: Data(out.utf8))
        #expect(s.done == 1 && s.failed == 1 && s.queued == 0 && s.recent.count == 1 && s.recent[0].seconds > 0)
        #expect(s.recentFailures.first?.reason.contains("not NIfTI") == true)
        let (rc2, text) = try runTool(bin, ["status", "--config", toml])
        #expect(rc2 == 0 && text.contains("1 done, 1 failed"), "\(text)")
        // One count as a bare number, for scripts (make demo waits on "finished").
        for (count, value) in [("done", "1"), ("failed", "1"), ("finished", "2"), ("queued", "0")] {
            let (rc3, n) = try runTool(bin, ["status", "--config", toml, "--count", count])
            #expect(rc3 == 0 && n.trimmingCharacters(in: .whitespacesAndNewlines) == value, "--count \(count): \(n)")
        }
        #expect(h.stop())
    }
}

/// Makes a folder unwritable even for root: the immutable attribute (chattr +i) when running
/// as root, else mode 0555.
func lockFolder(_ path: String) throws {
    if getuid() == 0 {
        let (rc, out) = try runTool("/usr/bin/chattr", ["+i", path])
        try #require(rc == 0, "chattr +i: \(out)")
    } else {
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: path)
    }
}

func unlockFolder(_ path: String) throws {
    if getuid() == 0 { try runTool("/usr/bin/chattr", ["-i", path]) }
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
}
