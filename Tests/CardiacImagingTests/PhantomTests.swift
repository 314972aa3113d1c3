import Foundation
import Testing

@testable import CardiacImaging

@Suite struct PhantomTests {
    /// The foundation issue's acceptance check: stats from the phantom's own ground truth
    /// agree with its analytic volumes (LV EDV/ESV within 5%, EF within 3 points), 20 patients.
    @Test func groundTruthStatsMatchAnalyticVolumes() throws {
        var worstVolume = 0.0, worstEF = 0.0
        for n in 1...20 {
            let truth = PhantomGenerator.truth(patient: n, seed: 1)
            let ed = PhantomGenerator.groundTruth(patient: n, seed: 1, frame: truth.edFrame - 1)
            let es = PhantomGenerator.groundTruth(patient: n, seed: 1, frame: truth.esFrame - 1)
            let r = try ClinicalStats.report(ed: ed, es: es)
            let edv = truth.ed.lvDiscML, esv = truth.es.lvDiscML
            let efTrue = 100 * (edv - esv) / edv
            let dEDV = abs(r.lv.edv - edv) / edv, dESV = abs(r.lv.esv - esv) / esv
            let dEF = abs((r.lv.ef ?? .nan) - efTrue)
            #expect(dEDV < 0.05, "patient \(n) LV EDV \(r.lv.edv) vs \(edv)")
            #expect(dESV < 0.05, "patient \(n) LV ESV \(r.lv.esv) vs \(esv)")
            #expect(dEF < 3, "patient \(n) EF \(r.lv.ef ?? .nan) vs \(efTrue)")
            // RV and myocardium follow the same rules.
            #expect(abs(r.rv.edv - truth.ed.rvDiscML) / truth.ed.rvDiscML < 0.05, "patient \(n) RV EDV")
            #expect(abs(r.ed.myocardium - truth.ed.myoDiscML) / truth.ed.myoDiscML < 0.05, "patient \(n) Myo")
            worstVolume = max(worstVolume, dEDV, dESV)
            worstEF = max(worstEF, dEF)
        }
        print("phantom truth check: worst LV volume error \(worstVolume * 100)%, worst EF error \(worstEF) points")
    }

    @Test func patientsDifferAndGroupsBehave() {
        let truths = (1...10).map { PhantomGenerator.truth(patient: $0, seed: 5) }
        func ef(_ t: PhantomTruth) -> Double { 100 * (t.ed.lvDiscML - t.es.lvDiscML) / t.ed.lvDiscML }
        for t in truths {
            let p = t.parameters
            #expect((6...16).contains(p.nz) && (10...30).contains(p.nt))
            #expect((160...256).contains(p.nx) && (160...256).contains(p.ny))
            #expect(p.pixelSpacing >= 1.2 && p.pixelSpacing <= 1.9 && p.sliceSpacing >= 6 && p.sliceSpacing <= 10)
            // ED is the largest LV volume of the cycle and ES the smallest.
            let lv = t.frames.map(\.lvDiscML)
            #expect(lv.max() == t.ed.lvDiscML && lv.min() == t.es.lvDiscML)
            // The myocardium is incompressible: at a mid-ventricular slice its area is kept
            // from ED to ES while the wall thickens.
            let model = HeartModel(p)
            let s = model.slicePosition(p.nz / 2)
            let sED = model.slice(position: s, frame: 0), sES = model.slice(position: s, frame: p.esFrame)
            #expect(abs(sES.myoArea - sED.myoArea) / sED.myoArea < 1e-9)
            let b = HeartModel.bins / 3
            #expect(sES.epi[b] - sES.endo[b] > sED.epi[b] - sED.endo[b])
            switch t.parameters.group {
            case .dilated: #expect(ef(t) < 40 && t.ed.lvDiscML > 130)
            case .normal: #expect(ef(t) > 50)
            case .hypertrophic: #expect(ef(t) > 55)
            case .infarct: #expect(ef(t) < 55)
            case .abnormalRV:
                let rvEF = 100 * (t.ed.rvDiscML - t.es.rvDiscML) / t.ed.rvDiscML
                #expect(rvEF < 40)
            }
        }
        #expect(Set(truths.map { $0.ed.lvDiscML }).count == truths.count)
    }

    @Test func slicesShowTheExpectedAnatomy() {
        let t = PhantomGenerator.truth(patient: 1, seed: 3)
        let ed = PhantomGenerator.groundTruth(patient: 1, seed: 3, frame: 0)
        let slices = ed.slices()
        func count(_ s: Slice2D<UInt8>, _ l: UInt8) -> Int { s.pixels.filter { $0 == l }.count }
        // Apical slices hold no RV; mid slices hold all three structures.
        let last = slices[slices.count - 1]
        #expect(count(last, 1) == 0)
        let mid = slices[slices.count / 2]
        #expect(count(mid, 1) > 0 && count(mid, 2) > 0 && count(mid, 3) > 0)
        // The RV wraps the septum: it touches the myocardium, never the LV cavity.
        var rvNextToLV = 0
        for s in slices {
            for j in 1..<(s.height - 1) {
                for i in 1..<(s.width - 1) where s[i, j] == 1 {
                    for (di, dj) in [(1, 0), (-1, 0), (0, 1), (0, -1)] where s[i + di, j + dj] == 3 { rvNextToLV += 1 }
                }
            }
        }
        #expect(rvNextToLV == 0)
        #expect(t.parameters.nz == slices.count)
    }

    /// Stacks reach beyond the ventricles as clinical stacks do: some start above the base,
    /// where the RV outflow is labelled RV but no LV is (the atria are background), and some
    /// end below the apex with no labels at all.
    @Test func someStacksCoverMoreThanTheVentricles() {
        var aboveBase = 0, belowApex = 0
        for n in 1...12 {
            let ed = PhantomGenerator.groundTruth(patient: n, seed: 21, frame: 0).slices()
            func count(_ s: Slice2D<UInt8>, _ l: UInt8) -> Int { s.pixels.filter { $0 == l }.count }
            if let first = ed.first, count(first, 3) == 0, count(first, 2) == 0, count(first, 1) > 0 { aboveBase += 1 }
            if let last = ed.last, last.pixels.allSatisfy({ $0 == 0 }) { belowApex += 1 }
        }
        #expect(aboveBase >= 2, "stacks starting above the LV base with RV outflow: \(aboveBase) of 12")
        #expect(belowApex >= 2, "stacks ending below the apex: \(belowApex) of 12")
    }

    @Test func writesACDCLayoutThatReadsBack() throws {
        let dir = try makeTemporaryFolder("phantom")
        defer { removeFolder(dir) }
        let truths = try PhantomGenerator.generate(into: dir, patients: 1, seed: 11, first: 7)
        let patients = try ACDCDataset.patients(in: dir)
        #expect(patients.map(\.id) == ["patient007"])
        let p = patients[0]
        let truth = try PhantomTruth.read(p.folder + "/phantom_truth.json")
        #expect(truth.patient == "patient007" && truth.esFrame == truths[0].esFrame)
        #expect(p.info.ed == 1 && p.info.es == truth.esFrame && p.info.frameCount == truth.parameters.nt)
        #expect(p.info.group == truth.group && p.info.heightCm != nil && p.info.weightKg != nil)
        let cine = try NIfTI.read(p.cinePath)
        #expect(cine.shape.nt == truth.parameters.nt && cine.data.typeName == "int16")
        for frame in [p.info.ed, p.info.es] {
            let (image, labels) = try p.labelledFrame(frame)
            let sameImage = image.floats() == (try cine.frame(frame - 1)).floats()
            #expect(sameImage)
            let expected = PhantomGenerator.groundTruth(patient: 7, seed: 11, frame: frame - 1)
            let sameLabels = labels.labels == expected.labels
            #expect(sameLabels)
            #expect(labels.geometry.matches(expected.geometry))
        }
        // The blood pool is bright, the myocardium dark, in every patient's images.
        let (image, labels) = try p.labelledFrame(p.info.ed)
        let px = image.floats()
        func mean(_ l: UInt8) -> Float {
            let v = zip(px, labels.labels).filter { $0.1 == l }.map(\.0)
            return v.reduce(0, +) / Float(v.count)
        }
        #expect(mean(3) > 1.8 * mean(2))
    }

    @Test(.enabled(if: PythonTool.shouldRun("nibabel"), "python3 with nibabel is needed"))
    func nibabelReadsThePhantomWithOurAffines() throws {
        let dir = try makeTemporaryFolder("phantom")
        defer { removeFolder(dir) }
        try PhantomGenerator.generate(into: dir, patients: 1, seed: 2, first: 3)
        let p = try ACDCDataset.patients(in: dir)[0]
        let files = [p.cinePath, p.imagePath(frame: 1), p.labelPath(frame: 1)]
        let out = try #require(try PythonTool.json("nibabel_check.py", ["describe"] + files) as? [[String: Any]])
        #expect(out.count == 3)
        for (d, f) in zip(out, files) {
            let ours = try NIfTI.read(f)
            let rows = try #require(d["affine"] as? [[Double]])
            let affine = Matrix4(rowMajor: rows.flatMap { $0 })
            #expect(affine.maxAbsDifference(ours.geometry.affine) < 1e-5, "\(f)")
            #expect(affine.maxAbsDifference(PhantomGenerator.geometry(PhantomGenerator.truth(patient: 3, seed: 2).parameters).affine) < 1e-4)
        }
    }

    @Test func sameSeedSameStudy() throws {
        let a = PhantomGenerator.groundTruth(patient: 4, seed: 9, frame: 2)
        let b = PhantomGenerator.groundTruth(patient: 4, seed: 9, frame: 2)
        let c = PhantomGenerator.groundTruth(patient: 4, seed: 10, frame: 2)
        let same = a == b, different = a.labels != c.labels || a.shape != c.shape
        #expect(same)
        #expect(different)
    }
}

@Suite struct SampleStudyTests {
    static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("samples/phantom").path

    /// The committed samples read back, their grids agree, and their stats match their truth.
    @Test func committedSamplesAreConsistent() throws {
        let patients = try ACDCDataset.patients(in: Self.samples)
        #expect(patients.count == 3)
        for p in patients {
            let (edImage, ed) = try p.labelledFrame(p.info.ed)
            let (_, es) = try p.labelledFrame(p.info.es)
            #expect(edImage.shape.spatial == ed.shape)
            let truth = try PhantomTruth.read(p.folder + "/phantom_truth.json")
            let r = try ClinicalStats.report(ed: ed, es: es, heightCm: p.info.heightCm, weightKg: p.info.weightKg)
            #expect(abs(r.lv.edv - truth.ed.lvDiscML) / truth.ed.lvDiscML < 0.05)
            #expect(abs(r.lv.esv - truth.es.lvDiscML) / truth.es.lvDiscML < 0.05)
            #expect(r.bsa != nil && r.lv.edvIndex != nil)
        }
    }
}
