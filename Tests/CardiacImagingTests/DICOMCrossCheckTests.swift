import Foundation
import Testing

@testable import CardiacImaging

/// Our DICOM output against independent readers: pydicom and highdicom read our SEG, place
/// its frames by their own geometry and compare them with our NIfTI label map voxel for
/// voxel; nibabel's affine of our NIfTI equals the geometry we read (and the one pydicom
/// computes from the MR files); dciodvfy (dicom3tools) validates the SEG and the MR files.
struct DICOMCrossCheckTests {
    func matrix(_ any: Any?) -> Matrix4? {
        guard let rows = any as? [[Double]], rows.count == 4 else { return nil }
        return Matrix4(rowMajor: rows.flatMap { $0 })
    }

    /// Writes the ED and ES SEGs (one series) and label maps of the fixture study.
    func writeOutputs(_ dir: String) throws -> (cine: DicomCine, pairs: [(seg: String, nifti: String, frame: Int)]) {
        let study = try DicomFixture.get()
        let cine = try DicomStudyReader.readCine(folder: study.folder)
        var options = DicomSegOptions()
        var pairs: [(String, String, Int)] = []
        for (n, t) in [study.truth.edFrame - 1, study.truth.esFrame - 1].enumerated() {
            let gt = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: t)
            let nifti = "\(dir)/frame\(t + 1)_gt.nii.gz", seg = "\(dir)/frame\(t + 1)_seg.dcm"
            try NIfTI.write(gt, to: nifti)
            options.instanceNumber = n + 1
            try DicomSegWriter.write(gt, frame: t, of: cine, to: seg, options: options)
            pairs.append((seg, nifti, t))
        }
        return (cine, pairs)
    }

    @Test(.enabled(if: PythonTool.shouldRun("pydicom", "highdicom", "nibabel"), "python3 with pydicom, highdicom and nibabel is needed"))
    func highdicomReadsOurSegOnTheLabelMapGrid() throws {
        let dir = try makeTemporaryFolder("autosam-segcheck")
        defer { removeFolder(dir) }
        let (cine, pairs) = try writeOutputs(dir)
        let study = try DicomFixture.get()
        for (seg, nifti, t) in pairs {
            let out = try #require(try PythonTool.json("dicom_seg_check.py", [seg, nifti, study.folder]) as? [String: Any])
            #expect(out["sop_class"] as? String == DicomSOPClass.segmentation)
            #expect(out["segmentation_type"] as? String == "BINARY")
            #expect(out["frames"] as? Int == 3 * cine.volume.shape.nz)
            #expect(out["frame_of_reference"] as? String == cine.info.frameOfReferenceUID)
            #expect(out["study_uid"] as? String == cine.info.studyInstanceUID)
            #expect(out["referenced_series"] as? [String] == [cine.info.seriesInstanceUID])
            #expect(out["referenced_instances"] as? Int == cine.volume.shape.nz)
            let segments = try #require(out["segments"] as? [[String: Any]])
            #expect(segments.map { $0["label"] as? String } == ["RV", "Myo", "LV"])
            #expect(segments.map { ($0["type"] as? [String])?.first } == ["53085002", "49848007", "87878005"])
            #expect(segments.allSatisfy { ($0["category"] as? [String]) == ["91723000", "SCT", "Anatomical Structure"] })
            // Voxel for voxel, by highdicom's volume and by each frame's own Plane Position.
            #expect(out["hd_equal"] as? Bool == true, "frame \(t + 1): highdicom \(out["hd_mismatch"] ?? "?") mismatches \(out["hd_error"] ?? "")")
            #expect(out["frames_equal"] as? Bool == true, "frame \(t + 1): \(out["frames_mismatch"] ?? "?") mismatches, \(out["frames_off_grid"] ?? "?") frames off grid")
            // nibabel's affine of our NIfTI = the DICOM geometry we read = pydicom's from the MR files.
            let nib = try #require(matrix(out["nifti_affine"]))
            let fromMR = try #require(matrix(out["source_affine_ras"]))
            #expect(nib.maxAbsDifference(cine.volume.geometry.affine) < 1e-4)
            #expect(fromMR.maxAbsDifference(cine.volume.geometry.affine) < 1e-4)
            #expect(out["source_frame_of_reference"] as? String == cine.info.frameOfReferenceUID)
        }
        // The converted cine itself (what `autosam dicom-to-nifti` writes).
        try NIfTI.write(cine.volume, to: dir + "/cine.nii.gz")
        let described = try #require(try PythonTool.json("nibabel_check.py", ["describe", dir + "/cine.nii.gz"]) as? [[String: Any]])
        let affine = try #require(matrix(described.first?["affine"]))
        #expect(affine.maxAbsDifference(cine.volume.geometry.affine) < 1e-4)
        #expect(described.first?["shape"] as? [Int] == [cine.volume.shape.nx, cine.volume.shape.ny, cine.volume.shape.nz, cine.volume.shape.nt])
    }

    /// Writes the measurement report of the fixture study's ground truth beside its SEGs.
    func writeReport(_ dir: String) throws -> (cine: DicomCine, report: FunctionReport, segs: [String], sr: String) {
        let (cine, pairs) = try writeOutputs(dir)
        let study = try DicomFixture.get()
        let ed = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: study.truth.edFrame - 1)
        let es = PhantomGenerator.groundTruth(patient: DicomFixture.patient, seed: DicomFixture.seed, frame: study.truth.esFrame - 1)
        let report = try ClinicalStats.report(ed: ed, es: es, heightCm: 172, weightKg: 70, edFrame: study.truth.edFrame - 1, esFrame: study.truth.esFrame - 1)
        var options = DicomSROptions()
        options.algorithmParameters = ["head v7", "encoder sha256:abc"]
        let sr = dir + "/sr.dcm"
        try DicomSRWriter.write(report, of: cine, edSeg: pairs[0].seg, esSeg: pairs[1].seg, to: sr, options: options)
        return (cine, report, pairs.map(\.seg), sr)
    }

    @Test(.enabled(if: PythonTool.shouldRun("pydicom", "highdicom"), "python3 with pydicom and highdicom is needed"))
    func highdicomReadsOurMeasurementReport() throws {
        let dir = try makeTemporaryFolder("autosam-srcheck")
        defer { removeFolder(dir) }
        let (cine, report, segs, sr) = try writeReport(dir)
        let out = try #require(try PythonTool.json("dicom_sr_check.py", [sr]) as? [String: Any])
        #expect(out["sop_class"] as? String == "1.2.840.10008.5.1.4.1.1.88.22")  // Enhanced SR
        #expect(out["study_uid"] as? String == cine.info.studyInstanceUID)
        #expect(out["templates"] as? [String] == ["1500"])
        #expect(out["procedures"] as? [[String]] == [["241620005", "SCT", "Magnetic resonance imaging of heart"]])
        let segUIDs = try segs.map { try DicomFile.readHeader($0).sopInstanceUID }
        #expect(Set(out["evidence"] as? [String] ?? []) == Set(segUIDs))
        // Each volumetric group: its segment in the right SEG, its concept, value and unit.
        let volumetric = try #require(out["volumetric"] as? [[String: Any]])
        let expected: [(String, String, Int, String, Double, String)] = [
            ("LV cavity, end-diastole", segUIDs[0], 3, "8821-1", report.lv.edv, "ml"),
            ("LV cavity, end-systole", segUIDs[1], 3, "8823-7", report.lv.esv, "ml"),
            ("RV cavity, end-diastole", segUIDs[0], 1, "8822-9", report.rv.edv, "ml"),
            ("RV cavity, end-systole", segUIDs[1], 1, "8824-5", report.rv.esv, "ml"),
            ("LV myocardium, end-diastole", segUIDs[0], 2, "18087-7", report.lvMass, "g"),
        ]
        #expect(volumetric.count == expected.count)
        for (g, e) in zip(volumetric, expected) {
            #expect(g["tracking_id"] as? String == e.0)
            #expect(g["seg_instance"] as? String == e.1, "\(e.0)")
            #expect(g["segment_numbers"] as? [Int] == [e.2], "\(e.0)")
            #expect(g["seg_class"] as? String == DicomSOPClass.segmentation)
            #expect(g["source_series"] as? String == cine.info.seriesInstanceUID)
            let m = try #require(g["measurements"] as? [[String: Any]])
            let first = try #require(m.first)
            #expect((first["concept"] as? [String])?.first == e.3, "\(e.0)")
            #expect(abs((first["value"] as? Double ?? -1) - e.4) <= 1e-6 * max(1, e.4), "\(e.0): \(first["value"] ?? "-") vs \(e.4)")
            #expect((first["unit"] as? [String])?.prefix(2) == [e.5, "UCUM"], "\(e.0)")
            // The indexed value (BSA known): the same concept in per-square-metre units.
            let lastUnit: String = (m.last?["unit"] as? [String])?.first ?? ""
            #expect(lastUnit == (e.5 == "g" ? "g/m2" : "ml/m2"), "\(e.0): \(lastUnit)")
        }
        let other = try #require(out["other"] as? [[String: Any]])
        #expect(other.map { $0["tracking_id"] as? String } == ["LV function", "RV function"])
        let functions = [(report.lv, "8811-2"), (report.rv, "8818-7")]
        for (g, (f, ef)) in zip(other, functions) {
            let m = try #require(g["measurements"] as? [[String: Any]])
            var byConcept: [String: [String: Any]] = [:]
            for x in m { if let c = (x["concept"] as? [String])?.first, byConcept[c] == nil { byConcept[c] = x } }
            #expect(abs((byConcept["90096001"]?["value"] as? Double ?? -1) - f.sv) <= 1e-6 * max(1, f.sv))
            #expect(abs((byConcept[ef]?["value"] as? Double ?? -1) - (f.ef ?? -2)) <= 1e-6 * 100)
            #expect((byConcept[ef]?["unit"] as? [String])?.first == "%")
        }
    }

    /// A 40 x 30 picture of distinct colours as a secondary capture of the fixture study,
    /// showing two of its images.
    func writePicture(_ dir: String) throws -> (cine: DicomCine, rgb: [UInt8], path: String) {
        let cine = try DicomStudyReader.readCine(folder: try DicomFixture.get().folder)
        let w = 40, h = 30
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { let i = 3 * (y * w + x); rgb[i] = UInt8(x * 6); rgb[i + 1] = UInt8(y * 8); rgb[i + 2] = UInt8((x + y) % 7 * 30) } }
        let path = dir + "/qc.dcm"
        try DicomPictureWriter.write(rgb: rgb, width: w, height: h, of: cine, shown: [(0, 0), (1, 0), (0, 0)], to: path)
        return (cine, rgb, path)
    }

    @Test(.enabled(if: PythonTool.shouldRun("pydicom"), "python3 with pydicom is needed"))
    func pydicomReadsOurPictureAsWritten() throws {
        let dir = try makeTemporaryFolder("autosam-sccheck")
        defer { removeFolder(dir) }
        let (cine, rgb, path) = try writePicture(dir)
        let out = try #require(try PythonTool.json("dicom_picture_check.py", [path]) as? [String: Any])
        #expect(out["sop_class"] as? String == "1.2.840.10008.5.1.4.1.1.7")
        #expect(out["study_uid"] as? String == cine.info.studyInstanceUID)
        #expect(out["image_type"] as? [String] == ["DERIVED", "SECONDARY"] && out["burned_in"] as? String == "YES")
        #expect(out["photometric"] as? String == "RGB" && out["shape"] as? [Int] == [30, 40, 3])
        #expect(out["sources"] as? [String] == [cine.source(slice: 0, frame: 0).sopInstanceUID, cine.source(slice: 1, frame: 0).sopInstanceUID])
        #expect(out["byte_sum"] as? Int == rgb.reduce(0) { $0 + Int($1) })
        let starts = (0..<30).map { y in (0..<3).map { Int(rgb[3 * (y * 40) + $0]) } }
        #expect(out["row_starts"] as? [[Int]] == starts)
    }

    @Test(.enabled(if: findTool("dciodvfy") != nil, "dicom3tools' dciodvfy is needed"))
    func dciodvfyAcceptsOurMeasurementReportAndPicture() throws {
        let dir = try makeTemporaryFolder("autosam-dciodvfy-sr")
        defer { removeFolder(dir) }
        let (_, _, _, sr) = try writeReport(dir)
        let (_, _, picture) = try writePicture(dir)
        for path in [sr, picture] {
            let (_, output) = runTool(try #require(findTool("dciodvfy")), [path])
            let errors = output.split(separator: "\n").filter { $0.hasPrefix("Error") }
            #expect(errors.isEmpty, "\(path): \(errors.joined(separator: "; "))")
        }
    }

    @Test(.enabled(if: findTool("dciodvfy") != nil, "dicom3tools' dciodvfy is needed"))
    func dciodvfyAcceptsOurSegAndMRImages() throws {
        let dir = try makeTemporaryFolder("autosam-dciodvfy")
        defer { removeFolder(dir) }
        let (cine, pairs) = try writeOutputs(dir)
        let tool = try #require(findTool("dciodvfy"))
        for path in pairs.map(\.seg) + [cine.source(slice: 0, frame: 0).path] {
            let (_, output) = runTool(tool, [path])
            let errors = output.split(separator: "\n").filter { $0.hasPrefix("Error") }
            #expect(errors.isEmpty, "\(path): \(errors.joined(separator: "; "))")
        }
    }
}
