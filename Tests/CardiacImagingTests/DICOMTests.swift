import Foundation
import Testing

@testable import CardiacImaging

/// DICOM in and out on the phantom: a scrambled, double-oblique, non-square cine read back
/// to the phantom's exact grid and values, and label map -> SEG -> label map.
struct DICOMTests {
    @Test func phantomStudyReadsBackToItsGridAndValues() throws {
        let study = try DicomFixture.get()
        let p = study.truth.parameters
        #expect(p.nx != p.ny, "the fixture must have a non-square matrix")
        #expect(DicomGeometry.pureOrientation(normal: study.geometry.direction[2]) == nil, "the fixture must be oblique")
        let names = try FileManager.default.contentsOfDirectory(atPath: study.folder)
        #expect(names.allSatisfy { $0.hasPrefix("IM") }, "scrambled names say nothing about slices or phases")

        let cine = try DicomStudyReader.readCine(folder: study.folder)
        let v = cine.volume
        #expect(v.shape == GridShape(p.nx, p.ny, p.nz, p.nt))
        let d = v.geometry.affine.maxAbsDifference(study.geometry.affine)
        #expect(d < 1e-4, "affine differs by \(d) mm")
        #expect(abs(v.geometry.spacing.z - p.sliceSpacing) < 1e-6, "slice spacing comes from the positions, not SliceThickness")
        #expect(abs((v.timing?.frameInterval ?? 0) - p.frameIntervalMs) < 1e-3)
        #expect(v.slope == 0.5 && v.intercept == -100)

        // Physical values equal the phantom's rendering (ED and ES, every slice).
        let renderer = PhantomRenderer(model: HeartModel(p), seed: DicomFixture.seed, patient: DicomFixture.patient)
        for t in [0, p.esFrame] {
            for k in 0..<p.nz {
                let expected = renderer.image(renderer.classify(slice: k, frame: t), slice: k, frame: t).map(Float.init)
                #expect(try v.slice(k, frame: t).pixels == expected, "slice \(k) frame \(t)")
            }
        }
        // Study facts: body measures and heart rate, and no identifiers in log text.
        #expect(abs((cine.info.patientHeightM ?? 0) - p.heightCm / 100) < 1e-9)
        #expect(abs((cine.info.patientWeightKg ?? 0) - p.weightKg) < 1e-9)
        #expect(cine.info.heartRateBPM != nil)
        #expect(cine.info.patientID == "PHANTOM-001")
        #expect(!"\(cine.info)".contains("PHANTOM") && !cine.info.logSummary.contains("Phantom^"))
        #expect(cine.info.frameOfReferenceUID == cine.source(slice: 0, frame: 0).frameOfReferenceUID)
    }

    @Test func labelMapToSegAndBack() throws {
        let study = try DicomFixture.get()
        let cine = try DicomStudyReader.readCine(folder: study.folder)
        let dir = try makeTemporaryFolder("autosam-seg")
        defer { removeFolder(dir) }
        let es = study.truth.esFrame - 1
        let gt = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: es)
        try gt.validate(against: try cine.volume.frame(es))  // the label map lies on the DICOM grid

        // NIfTI label map and SEG from the same geometry.
        try NIfTI.write(gt, to: dir + "/es_gt.nii.gz")
        let segPath = dir + "/es_seg.dcm"
        try DicomSegWriter.write(gt, frame: es, of: cine, to: segPath)
        let nifti = try NIfTI.readLabelMap(dir + "/es_gt.nii.gz")
        #expect(nifti.geometry.affine.maxAbsDifference(cine.volume.geometry.affine) < 1e-4)

        let seg = try DicomSegReader.read(segPath)
        #expect(seg.frames.count == 3 * cine.volume.shape.nz, "one frame per segment and slice")
        #expect(seg.segments.count == 3 && seg.segments[1]?.type.value == "53085002" && seg.segments[3]?.type.value == "87878005")
        #expect(seg.frameOfReferenceUID == cine.info.frameOfReferenceUID)
        #expect(seg.studyInstanceUID == cine.info.studyInstanceUID)
        let sg = try seg.geometry()
        let d = sg.affine.maxAbsDifference(cine.volume.geometry.affine)
        #expect(d < 1e-4, "SEG geometry differs from the series' by \(d) mm")
        #expect(try seg.labelMap().labels == gt.labels, "frames placed by their own positions give the label map back")
        #expect(try seg.labelMap(on: cine.volume.geometry, slices: cine.volume.shape.nz).labels == gt.labels)
        // Every frame references the source image of its slice at the segmented phase.
        let inverse = try cine.volume.geometry.affine.affineInverse()
        for f in seg.frames {
            let k = Int(inverse.apply(DicomGeometry.lpsToRAS(f.position)).z.rounded())
            #expect(f.referencedSOPInstanceUID == cine.source(slice: k, frame: es).sopInstanceUID)
        }
        // A SEG dropped into the study folder is set aside as a non-image; the cine is still
        // found. (A linked copy of the study: the shared fixture stays untouched.)
        let mixed = dir + "/study"
        try FileManager.default.createDirectory(atPath: mixed, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: study.folder) {
            try FileManager.default.linkItem(atPath: study.folder + "/" + name, toPath: mixed + "/" + name)
        }
        let copy = mixed + "/zz_seg.dcm"
        try FileManager.default.copyItem(atPath: segPath, toPath: copy)
        let scan = try DicomScanner.scan(mixed)
        #expect(scan.nonImages.map(\.reason) == ["Segmentation"])
        #expect(throws: DicomError.notAnImage(path: copy, kind: "Segmentation")) { try DicomFile.readPixels(try DicomFile.readHeader(copy)) }
        #expect(try DicomSeriesLayout.analyse(try SeriesRules.default.chooseCine(from: scan).series).sliceCount == cine.volume.shape.nz)
    }

    @Test func segRejectsALabelMapOnAnotherGrid() throws {
        let study = try DicomFixture.get()
        let cine = try DicomStudyReader.readCine(folder: study.folder)
        var gt = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: 0)
        var a = gt.geometry.affine
        a[0, 3] += 0.01
        gt.geometry = VolumeGeometry(affine: a)
        #expect(throws: DicomError.self) { try DicomSegWriter.write(gt, frame: 0, of: cine, to: "/tmp/never-written.dcm") }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/never-written.dcm"))
    }

    @Test func seriesRulesPickTheObliqueCineAndDecodeWithDefaults() throws {
        let dir = try makeTemporaryFolder("autosam-rules")
        defer { removeFolder(dir) }
        var sax = SyntheticSeries()
        sax.description = "cine_retro"
        sax.seriesNumber = 7
        try sax.write(to: dir + "/a")
        // An axial cine stack with more slices: eligible, but the oblique one is preferred.
        var axial = SyntheticSeries()
        axial.description = "cine_retro"
        axial.nz = 7
        axial.seriesNumber = 4
        try axial.write(to: dir + "/b") { k, _, m in
            m.imageOrientation = (SIMD3(1, 0, 0), SIMD3(0, 1, 0))
            m.imagePosition = SIMD3(0, 0, Double(k) * 6)
            return true
        }
        let scan = try DicomScanner.scan(dir)
        #expect(scan.series.count == 2)
        let chosen = try SyntheticSeries.rules.chooseCine(from: scan)
        #expect(chosen.series.seriesNumber == 7)

        let decoded = try JSONDecoder().decode(SeriesRules.self, from: Data(#"{"minPhases": 20}"#.utf8))
        #expect(decoded.minPhases == 20 && decoded.minSlices == SeriesRules.default.minSlices)
        #expect(decoded.avoidDescriptions == SeriesRules.defaultAvoid)
        let round = try JSONDecoder().decode(SeriesRules.self, from: try JSONEncoder().encode(SeriesRules.default))
        #expect(round == SeriesRules.default)
        #expect(throws: DicomError.self) { try SeriesRules(preferDescriptions: ["(unclosed"]).validate() }
    }

    @Test func syntheticSeriesValuesOrderAndGeometry() throws {
        let dir = try makeTemporaryFolder("autosam-synth")
        defer { removeFolder(dir) }
        let s = SyntheticSeries()
        try s.write(to: dir)
        let cine = try DicomStudyReader.readCine(folder: dir, rules: SyntheticSeries.rules)
        let v = cine.volume
        #expect(v.shape == GridShape(s.nx, s.ny, s.nz, s.nt))
        for k in 0..<s.nz {
            for t in 0..<s.nt {
                #expect(try v.slice(k, frame: t).pixels == s.pixels(k, t).map(Float.init))
            }
        }
        // i runs along the row direction by the column spacing, j along the column direction.
        let g = v.geometry
        let lps0 = DicomGeometry.rasToLPS(g.world(SIMD3(0, 0, 0)))
        let lpsI = DicomGeometry.rasToLPS(g.world(SIMD3(1, 0, 0)))
        let lpsJ = DicomGeometry.rasToLPS(g.world(SIMD3(0, 1, 0)))
        let lpsK = DicomGeometry.rasToLPS(g.world(SIMD3(0, 0, 1)))
        #expect((lps0 - s.position(0)).length < 1e-9)
        #expect((lpsI - lps0 - s.row * s.spacing.y).length < 1e-9)
        #expect((lpsJ - lps0 - s.column * s.spacing.x).length < 1e-9)
        #expect((lpsK - lps0 - s.normal * s.sliceGap).length < 1e-9)
        #expect(v.timing == FrameTiming(frameInterval: 40, offset: 0))
        #expect(cine.info.patientID == "SECRET-ID-123" && !cine.info.logSummary.contains("SECRET"))
    }

    @Test func uidsAreValid() {
        let a = DicomUID.make(), b = DicomUID.derived(1, 2, 3)
        for u in [a, b] {
            #expect(u.hasPrefix("2.25.") && u.count <= 64)
            #expect(u.dropFirst(5).allSatisfy(\.isNumber) && !u.dropFirst(5).hasPrefix("0"))
        }
        #expect(DicomUID.derived(1, 2, 3) == b && DicomUID.derived(1, 2, 4) != b)
        #expect(DicomUID.decimal(hi: 0, lo: 12345) == "2.25.12345")
        #expect(DicomUID.decimal(hi: UInt64.max, lo: UInt64.max) == "2.25.340282366920938463463374607431768211455")
    }
}

/// Enhanced (multi-frame) MR: the same phantom cine as one file with shuffled frames reads
/// back to the same volume as the classic files, and its SEG references frames.
struct DICOMEnhancedTests {
    @Test func enhancedCineEqualsClassicCine() throws {
        let classic = try DicomFixture.get()
        let dir = try makeTemporaryFolder("autosam-enhanced")
        defer { removeFolder(dir) }
        var o = PhantomDicomOptions()
        o.enhanced = true
        o.scrambleFileOrder = true
        o.rescaleSlope = 0.5
        o.rescaleIntercept = -100
        let study = try PhantomDicomWriter.writePatient(number: DicomFixture.patient, seed: DicomFixture.seed, outDir: dir, options: o)
        #expect(study.fileCount == 4, "one enhanced cine file and three localiser images")
        let a = try DicomStudyReader.readCine(folder: classic.folder)
        let b = try DicomStudyReader.readCine(folder: study.folder)
        #expect(b.volume.shape == a.volume.shape)
        #expect(b.volume.data == a.volume.data && b.volume.slope == a.volume.slope && b.volume.intercept == a.volume.intercept)
        #expect(b.volume.geometry.affine.maxAbsDifference(a.volume.geometry.affine) < 1e-9)
        #expect(b.volume.timing == a.volume.timing)
        #expect(b.source(slice: 0, frame: 0).frameIndex != nil)

        let es = study.truth.esFrame - 1
        let gt = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: es)
        let segPath = dir + "/seg.dcm"
        try DicomSegWriter.write(gt, frame: es, of: b, to: segPath)
        let seg = try DicomSegReader.read(segPath)
        #expect(try seg.labelMap().labels == gt.labels)
        #expect(seg.frames.allSatisfy { $0.referencedSOPInstanceUID == b.source(slice: 0, frame: 0).sopInstanceUID })
        // The measurement report and the QC picture of an enhanced source: one instance,
        // referenced by frame.
        let ed = study.truth.edFrame - 1
        let edSeg = dir + "/seg_ed.dcm", srPath = dir + "/sr.dcm", picture = dir + "/qc.dcm"
        let edTruth = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: ed)
        try DicomSegWriter.write(edTruth, frame: ed, of: b, to: edSeg)
        try DicomSRWriter.write(try ClinicalStats.report(ed: edTruth, es: gt), of: b, edSeg: edSeg, esSeg: segPath, to: srPath)
        try DicomPictureWriter.write(rgb: [UInt8](repeating: 90, count: 8 * 6 * 3), width: 8, height: 6, of: b,
                                     shown: [(0, ed), (1, ed), (0, es)], to: picture)
        #expect(try DicomFile.readHeader(srPath).studyInstanceUID == b.info.studyInstanceUID)
        if let tool = findTool("dciodvfy") {
            for path in [segPath, edSeg, srPath, picture] {
                let errors = runTool(tool, [path]).output.split(separator: "\n").filter { $0.hasPrefix("Error") }
                #expect(errors.isEmpty, "\(path): \(errors)")
            }
        }
    }
}
