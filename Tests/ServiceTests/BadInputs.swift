import CardiacImaging
import Foundation

/// Malformed studies of many kinds, each with a phrase its failure reason must contain (what
/// a person would need to read to fix it).
enum BadInputs {
    struct Item {
        var name: String
        var expect: String
    }

    /// A small valid 3D / 4D volume on an oblique grid.
    static func volume(nx: Int = 24, ny: Int = 20, nz: Int = 4, nt: Int = 1, spacing: SIMD3<Double> = SIMD3(1.5, 1.5, 8)) -> Volume {
        let g = VolumeGeometry(spacing: spacing, origin: SIMD3(3, -4, 5), direction: [SIMD3(0.8, 0.6, 0), SIMD3(-0.6, 0.8, 0), SIMD3(0, 0, 1)])
        let n = nx * ny * nz * nt
        return Volume(shape: GridShape(nx, ny, nz, nt), geometry: g, data: .int16((0..<n).map { Int16($0 % 300) }),
                      timing: nt > 1 ? FrameTiming(frameInterval: 40) : nil)
    }

    /// A small DICOM cine (4 slices x 4 phases, 16 x 12 pixels) whose images `damage` may alter
    /// or drop (return false).
    static func dicom(_ folder: String, slices: Int = 4, phases: Int = 4, description: String = "sa_cine",
                      damage: (Int, Int, inout DicomMRImage) -> Bool = { _, _, _ in true }) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let study = DicomUID.make(), series = DicomUID.make(), frame = DicomUID.make()
        let row = SIMD3<Double>(0.8, 0.6, 0), col = SIMD3<Double>(-0.36, 0.48, 0.8)
        let normal = SIMD3(row.y * col.z - row.z * col.y, row.z * col.x - row.x * col.z, row.x * col.y - row.y * col.x)
        for k in 0..<slices {
            for t in 0..<phases {
                var m = DicomMRImage(sopInstanceUID: DicomUID.make(), studyInstanceUID: study, seriesInstanceUID: series,
                                     frameOfReferenceUID: frame, rows: 12, columns: 16)
                m.seriesDescription = description
                m.seriesNumber = 3
                m.instanceNumber = k * phases + t + 1
                m.imagePosition = SIMD3(10, -20, 30) + normal * (Double(k) * 8)
                m.imageOrientation = (row, col)
                m.pixelSpacing = SIMD2(1.5, 1.5)
                m.sliceThickness = 8
                m.triggerTime = Double(t) * 40
                m.cardiacNumberOfImages = phases
                m.patientID = "SECRET-ID"
                m.patientName = "Secret^Name"
                guard damage(k, t, &m) else { continue }
                let px = m.omitPixelData ? [] : (0..<(m.rows * m.columns)).map { UInt16(100 * t + 10 * k + $0 % 10) }
                try DicomMRWriter.write(m, pixels: px, to: "\(folder)/img_\(k)_\(t).dcm")
            }
        }
    }

    static func write(_ data: Data, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// NIfTI.write into a folder made first.
    static func nifti(_ v: Volume, _ path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try NIfTI.write(v, to: path)
    }

    static func junk(_ n: Int, seed: Int) -> Data { Data((0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }) }

    /// Writes the items into `dir` and returns them.
    static func make(in dir: String) throws -> [Item] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var items: [Item] = []
        func add(_ name: String, _ expect: String) { items.append(Item(name: name, expect: expect)) }

        // Valid files to damage.
        let cine = volume(nt: 5)
        try NIfTI.write(cine, to: dir + "/.src.nii.gz")
        try NIfTI.write(cine, to: dir + "/.src.nii")
        let gz = try Data(contentsOf: URL(fileURLWithPath: dir + "/.src.nii.gz"))
        let plain = try Data(contentsOf: URL(fileURLWithPath: dir + "/.src.nii"))
        try fm.removeItem(atPath: dir + "/.src.nii.gz")
        try fm.removeItem(atPath: dir + "/.src.nii")

        // Single NIfTI files.
        for (i, keep) in [gz.count / 2, gz.count - 30, 200, 40].enumerated() {
            try write(gz.prefix(keep), "\(dir)/truncated_gz_\(i).nii.gz"); add("truncated_gz_\(i).nii.gz", "cannot read")
        }
        for (i, keep) in [plain.count / 2, plain.count - 1, 400, 100].enumerated() {
            try write(plain.prefix(keep), "\(dir)/truncated_\(i).nii"); add("truncated_\(i).nii", "cannot read")
        }
        for i in 0..<3 {
            try write(junk(3000 + i * 500, seed: i), "\(dir)/junk_\(i).nii.gz"); add("junk_\(i).nii.gz", "cannot read")
            try write(junk(2000 + i * 300, seed: i + 9), "\(dir)/junkplain_\(i).nii"); add("junkplain_\(i).nii", "cannot read")
        }
        try write(Data(), "\(dir)/empty.nii.gz"); add("empty.nii.gz", "cannot read")
        // Absurd dimensions in an otherwise valid header (refused before allocation).
        var absurd = plain
        absurd.withUnsafeMutableBytes { b in
            for d in 1...3 { b.storeBytes(of: Int16(32000).littleEndian, toByteOffset: 40 + 2 * d, as: Int16.self) }
        }
        try write(absurd, "\(dir)/absurd_dims.nii"); add("absurd_dims.nii", "cannot read")
        try NIfTI.write(volume(nz: 1), to: "\(dir)/single_slice.nii.gz"); add("single_slice.nii.gz", "single slice")
        try NIfTI.write(volume(nx: 4, ny: 4), to: "\(dir)/tiny.nii.gz"); add("tiny.nii.gz", "at least 8 x 8")
        try write(Data("not an image at all".utf8), "\(dir)/text.nii"); add("text.nii", "cannot read")
        // Files that are not NIfTI at all.
        for (i, n) in ["notes.txt", "scan.png", "study.zip", "image.dcm", "report.pdf", "noextension"].enumerated() {
            try write(junk(100 + i, seed: i), "\(dir)/\(n)"); add(n, "not NIfTI")
        }

        // Folders.
        try fm.createDirectory(atPath: dir + "/empty_folder", withIntermediateDirectories: true); add("empty_folder", "holds no files")
        try fm.createDirectory(atPath: dir + "/nested_empty/a/b", withIntermediateDirectories: true); add("nested_empty", "holds no files")
        for i in 0..<3 {
            try write(junk(500, seed: i), "\(dir)/junk_folder_\(i)/a.bin")
            try write(Data("hello".utf8), "\(dir)/junk_folder_\(i)/readme.txt")
            add("junk_folder_\(i)", "no DICOM images")
        }
        try nifti(volume(nt: 3), "\(dir)/two_images/a.nii.gz")
        try nifti(volume(nt: 3), "\(dir)/two_images/b.nii.gz"); add("two_images", "2 NIfTI images")
        try write(gz.prefix(gz.count / 3), "\(dir)/folder_truncated/cine.nii.gz"); add("folder_truncated", "cannot read")
        try nifti(volume(nt: 3), "\(dir)/info_beyond/cine.nii.gz")
        try write(Data("ED: 1\nES: 9\nNbFrame: 9\n".utf8), "\(dir)/info_beyond/Info.cfg"); add("info_beyond", "the cine has 3 frames")
        try nifti(volume(), "\(dir)/info_3d/frame.nii.gz")
        try write(Data("ED: 1\nES: 2\n".utf8), "\(dir)/info_3d/Info.cfg"); add("info_3d", "single 3D frame")
        try nifti(volume(nt: 3), "\(dir)/info_no_ed/cine.nii.gz")
        try write(Data("ES: 2\nNbFrame: 3\n".utf8), "\(dir)/info_no_ed/Info.cfg"); add("info_no_ed", "missing ED")
        // ACDC-layout folders.
        try nifti(volume(), "\(dir)/acdc_missing/acdc_missing_frame01.nii.gz")
        try write(Data("ED: 1\nES: 4\nNbFrame: 5\n".utf8), "\(dir)/acdc_missing/Info.cfg"); add("acdc_missing", "frame 4 image")
        try nifti(volume(), "\(dir)/acdc_grids/acdc_grids_frame01.nii.gz")
        try nifti(volume(nx: 30), "\(dir)/acdc_grids/acdc_grids_frame03.nii.gz")
        try write(Data("ED: 1\nES: 3\nNbFrame: 5\n".utf8), "\(dir)/acdc_grids/Info.cfg"); add("acdc_grids", "different grids")
        try nifti(volume(), "\(dir)/acdc_badinfo/acdc_badinfo_frame01.nii.gz")
        try write(Data("ED: one\nES: 3\n".utf8), "\(dir)/acdc_badinfo/Info.cfg"); add("acdc_badinfo", "not a number")
        try write(gz.prefix(300), "\(dir)/acdc_trunc/acdc_trunc_4d.nii.gz")
        try write(Data("ED: 1\nES: 3\nNbFrame: 5\n".utf8), "\(dir)/acdc_trunc/Info.cfg"); add("acdc_trunc", "cannot read")

        // DICOM folders.
        try dicom(dir + "/dcm_no_spacing") { k, t, m in if k == 1 && t == 2 { m.pixelSpacing = nil }; return true }
        add("dcm_no_spacing", "Pixel Spacing")
        try dicom(dir + "/dcm_no_orientation") { k, _, m in if k == 2 { m.imageOrientation = nil }; return true }
        add("dcm_no_orientation", "Image Orientation")
        try dicom(dir + "/dcm_no_position") { k, t, m in if k == 0 && t == 0 { m.imagePosition = nil }; return true }
        add("dcm_no_position", "Image Position")
        try dicom(dir + "/dcm_duplicate") { k, _, m in if k == 3 { m.imagePosition = SIMD3(10, -20, 30) }; return true }
        add("dcm_duplicate", "duplicate")
        try dicom(dir + "/dcm_missing_slice", slices: 6) { k, _, _ in k != 3 }
        add("dcm_missing_slice", "spacing")
        try dicom(dir + "/dcm_few_phases", phases: 2)
        add("dcm_few_phases", "phase(s), 4 needed")
        try dicom(dir + "/dcm_few_slices", slices: 2)
        add("dcm_few_slices", "slice position(s), 4 needed")
        try dicom(dir + "/dcm_localizer", description: "localizer")
        add("dcm_localizer", "no short-axis cine")
        try dicom(dir + "/dcm_report", slices: 1, phases: 1) { _, _, m in
            m.sopClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
            m.omitPixelData = true
            return true
        }
        add("dcm_report", "Basic Text SR")
        try dicom(dir + "/dcm_mixed_orientation") { k, _, m in
            if k == 2 { m.imageOrientation = (SIMD3(1, 0, 0), SIMD3(0, 1, 0)) }
            return true
        }
        add("dcm_mixed_orientation", "series")
        try dicom(dir + "/dcm_matrix") { k, t, m in
            if k == 1 && t == 1 { m.rows = 10 }
            return true
        }
        add("dcm_matrix", "series")
        for (i, keep) in [300, 140].enumerated() {
            let f = dir + "/dcm_truncated_\(i)"
            try dicom(f)
            let victim = f + "/img_1_1.dcm"
            let data = try Data(contentsOf: URL(fileURLWithPath: victim))
            try write(data.prefix(keep), victim)
            add("dcm_truncated_\(i)", "truncated")
        }
        do {
            let f = dir + "/dcm_garbage"
            try dicom(f)
            let victim = f + "/img_2_0.dcm"
            var data = try Data(contentsOf: URL(fileURLWithPath: victim))
            for i in 200..<260 { data[i] = 0xFF }
            try write(data, victim)
            add("dcm_garbage", "dcm")
        }
        return items
    }
}
