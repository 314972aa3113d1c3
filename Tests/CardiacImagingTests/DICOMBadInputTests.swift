import Foundation
import Testing

@testable import CardiacImaging

/// Bad DICOM gives a specific, readable error (naming the file or series), never a crash.
struct DICOMBadInputTests {
    /// Writes a synthetic series damaged by `damage` and returns the reader's error.
    func readError(_ series: SyntheticSeries = SyntheticSeries(), damage: @escaping (Int, Int, inout DicomMRImage) -> Bool) throws -> DicomError? {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        try series.write(to: dir, damage: damage)
        do {
            _ = try DicomStudyReader.readCine(folder: dir, rules: SyntheticSeries.rules)
            return nil
        } catch let e as DicomError {
            return e
        }
    }

    @Test func nonImageObject() throws {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        let s = SyntheticSeries()
        var m = s.image(0, 0)
        m.sopClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  // Basic Text SR
        m.omitPixelData = true
        let path = dir + "/report.dcm"
        try DicomMRWriter.write(m, pixels: [], to: path)
        let h = try DicomFile.readHeader(path)
        #expect(throws: DicomError.notAnImage(path: path, kind: "Basic Text SR")) { try DicomFile.readPixels(h) }
        do {
            _ = try DicomStudyReader.readCine(folder: dir)
            Issue.record("a folder with only a report must not read")
        } catch let DicomError.noShortAxisCine(_, reasons) {
            #expect(reasons.joined().contains("Basic Text SR without pixel data"))
        }
    }

    /// The SR and picture writers refuse bad requests with a specific error and leave no file.
    @Test func badReportAndPictureRequests() throws {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        let cine = try DicomStudyReader.readCine(folder: try DicomFixture.get().folder)
        let path = dir + "/out.dcm"
        #expect(throws: DicomError.self) { try DicomPictureWriter.write(rgb: [1, 2, 3], width: 2, height: 1, of: cine, shown: [], to: path) }
        #expect(throws: DicomError.self) {
            try DicomPictureWriter.write(rgb: [UInt8](repeating: 0, count: 12), width: 2, height: 2, of: cine, shown: [(cine.volume.shape.nz, 0)], to: path)
        }
        // A report whose SEG is not a DICOM file.
        try Data("not dicom".utf8).write(to: URL(fileURLWithPath: dir + "/seg.dcm"))
        let map = LabelMap(shape: cine.volume.shape.spatial, geometry: cine.volume.geometry, labels: [UInt8](repeating: 3, count: cine.volume.shape.voxelsPerFrame))
        let report = try ClinicalStats.report(ed: map, es: map)
        do {
            try DicomSRWriter.write(report, of: cine, edSeg: dir + "/seg.dcm", esSeg: dir + "/seg.dcm", to: path)
            Issue.record("a report referencing a non-DICOM SEG must not be written")
        } catch let e as DicomError {
            #expect("\(e)".contains("seg.dcm") || "\(e)".lowercased().contains("dicom"), "\(e)")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func truncatedFile() throws {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        try SyntheticSeries().write(to: dir)
        let victim = dir + "/sa_cine_2_1.dcm"
        let data = try Data(contentsOf: URL(fileURLWithPath: victim))
        for keep in [data.count - 40, 300, 140] {
            try data.prefix(keep).write(to: URL(fileURLWithPath: victim))
            do {
                _ = try DicomFile.readHeader(victim)
                Issue.record("a file cut to \(keep) bytes must not read")
            } catch let e as DicomError {
                guard case .truncated(let p, _) = e else { Issue.record("cut to \(keep): \(e)"); continue }
                #expect(p == victim)
            }
            #expect(throws: DicomError.self) { try DicomStudyReader.readCine(folder: dir, rules: SyntheticSeries.rules) }
        }
        // Garbage over the data set (the DICM preamble intact): an error, not a skipped file.
        var damaged = data
        for i in 200..<260 { damaged[i] = 0xFF }
        try damaged.write(to: URL(fileURLWithPath: victim))
        #expect(throws: DicomError.self) { try DicomScanner.scan(dir) }
    }

    @Test func notDicomFilesAreSetAside() throws {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        try SyntheticSeries().write(to: dir)
        try "notes".write(toFile: dir + "/README.txt", atomically: true, encoding: .utf8)
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: dir + "/blob.bin"))
        let scan = try DicomScanner.scan(dir)
        #expect(scan.notDicom.count == 2 && scan.series.count == 1)
        #expect(try DicomStudyReader.readCine(folder: dir, rules: SyntheticSeries.rules).volume.shape.nz == 5)
        #expect(throws: DicomError.noImages(folder: dir + "/none", skipped: 0)) {
            try FileManager.default.createDirectory(atPath: dir + "/none", withIntermediateDirectories: true)
            _ = try DicomStudyReader.readCine(folder: dir + "/none")
        }
    }

    @Test func missingPixelSpacing() throws {
        let e = try readError { k, t, m in
            if k == 1 && t == 2 { m.pixelSpacing = nil }
            return true
        }
        guard case .missingAttribute(let path, let attribute)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(path.hasSuffix("sa_cine_1_2.dcm") && attribute.contains("Pixel Spacing"))
    }

    @Test func missingOrientation() throws {
        let e = try readError { k, _, m in
            if k == 3 { m.imageOrientation = nil }
            return true
        }
        guard case .missingAttribute(_, let attribute)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(attribute.contains("Image Orientation"))
    }

    @Test func twoSeriesUnderOneUID() throws {
        // Another orientation mixed in.
        var e = try readError { k, _, m in
            if k == 4 { m.imageOrientation = (SIMD3(1, 0, 0), SIMD3(0, 1, 0)) }
            return true
        }
        guard case .inconsistentSeries(let s1, let r1)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(s1.contains("sa_cine") && r1.contains("Image Orientation"))
        // Another matrix size mixed in.
        e = try readError { k, _, m in
            if k == 0 { m.rows = 16 }
            return true
        }
        guard case .inconsistentSeries(_, let r2)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(r2.contains("matrix"))
        // A slice with fewer phases.
        e = try readError { k, t, _ in !(k == 2 && t == 1) }
        guard case .inconsistentSeries(_, let r3)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(r3.contains("slice 2 has 2 image(s)"))
    }

    @Test func duplicatePositions() throws {
        let s = SyntheticSeries()
        let e = try readError(s) { k, _, m in
            if k == 3 { m.imagePosition = s.position(2) }
            return true
        }
        guard case .duplicatePosition(_, let reason)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(reason.contains("trigger time"))
    }

    @Test func inconsistentSpacing() throws {
        // Slice 2 missing: the gaps are 6, 12, 6.
        let e = try readError { k, _, _ in k != 2 }
        guard case .inconsistentSpacing(_, let reason)? = e else { Issue.record("got \(String(describing: e))"); return }
        #expect(reason.contains("12.00") && reason.contains("missing slice"))
        // A slightly shifted slice (0.5 mm) is caught too.
        let s = SyntheticSeries()
        let e2 = try readError(s) { k, _, m in
            if k == 3 { m.imagePosition = s.position(3) + s.normal * 0.5 }
            return true
        }
        guard case .inconsistentSpacing? = e2 else { Issue.record("got \(String(describing: e2))"); return }
    }

    @Test func noShortAxisCine() throws {
        let dir = try makeTemporaryFolder("autosam-bad")
        defer { removeFolder(dir) }
        var loc = SyntheticSeries()
        loc.description = "localizer"
        try loc.write(to: dir + "/loc")
        var single = SyntheticSeries()
        single.description = "sa_cine"
        single.nt = 1
        try single.write(to: dir + "/single")
        do {
            _ = try DicomStudyReader.readCine(folder: dir, rules: SyntheticSeries.rules)
            Issue.record("no series should qualify")
        } catch let e as DicomError {
            guard case .noShortAxisCine(_, let reasons) = e else { Issue.record("got \(e)"); return }
            #expect(reasons.count == 2)
            #expect(reasons.joined(separator: "\n").contains("avoided pattern"))
            #expect(reasons.joined(separator: "\n").contains("1 phase(s), 2 needed"))
            #expect(!e.description.contains("SECRET"))
        }
    }
}
