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
