import Foundation
import Testing

@testable import CardiacImaging

/// Shared DICOM fixtures: one phantom study written once per test process (scrambled file
/// names, rescale, localiser), and small synthetic series for the bad-input tests.
enum DicomFixture {
    static let seed: UInt64 = 3
    static let patient = 1

    /// Patient 1 of seed 3: 236 x 213 (non-square), 10 slices x 17 phases, double oblique.
    /// Stored = 2 * value + 200 (slope 0.5, intercept -100), so physical values are exact.
    static let study: Result<(study: PhantomDicomStudy, root: String), Error> = Result {
        let root = try makeTemporaryFolder("autosam-dicom-fixture")
        cleanupPath = root
        atexit { if let p = DicomFixture.cleanupPath { removeFolder(p) } }
        var o = PhantomDicomOptions()
        o.scrambleFileOrder = true
        o.rescaleSlope = 0.5
        o.rescaleIntercept = -100
        return (try PhantomDicomWriter.writePatient(number: patient, seed: seed, outDir: root, options: o), root)
    }

    static func get() throws -> PhantomDicomStudy { try study.get().study }

    /// Removed when the test process exits.
    nonisolated(unsafe) static var cleanupPath: String?
}

/// A small oblique series written image by image, which a test can damage.
struct SyntheticSeries {
    var nx = 12, ny = 10, nz = 5, nt = 3
    var spacing = SIMD2<Double>(1.25, 1.5)  // between rows, between columns
    var sliceGap = 6.0
    var description = "sa_cine"
    var seriesUID = DicomUID.make()
    var studyUID = DicomUID.make()
    var frameUID = DicomUID.make()
    var seriesNumber = 3
    let row = SIMD3<Double>(0.8, 0.6, 0).normalized
    let column = SIMD3<Double>(-0.36, 0.48, 0.8).normalized

    var normal: SIMD3<Double> { row.cross(column).normalized }

    func position(_ k: Int) -> SIMD3<Double> { SIMD3(10, -20, 30) + normal * (Double(k) * sliceGap) }

    /// The image of slice k, phase t, before any damage.
    func image(_ k: Int, _ t: Int) -> DicomMRImage {
        var m = DicomMRImage(
            sopInstanceUID: DicomUID.make(), studyInstanceUID: studyUID, seriesInstanceUID: seriesUID,
            frameOfReferenceUID: frameUID, rows: ny, columns: nx)
        m.seriesDescription = description
        m.seriesNumber = seriesNumber
        m.instanceNumber = k * nt + t + 1
        m.imagePosition = position(k)
        m.imageOrientation = (row, column)
        m.pixelSpacing = spacing
        m.sliceThickness = sliceGap
        m.triggerTime = Double(t) * 40
        m.cardiacNumberOfImages = nt
        m.patientID = "SECRET-ID-123"
        m.patientName = "Secret^Name"
        return m
    }

    /// A recognisable value per voxel: 1000 * t + 100 * k + j * nx + i (stays below 4096).
    func pixels(_ k: Int, _ t: Int) -> [UInt16] {
        (0..<(nx * ny)).map { UInt16(1000 * t + 100 * k + $0 % 100) }
    }

    /// Writes every image into `folder`, after `damage` (return false to leave one out).
    func write(to folder: String, damage: (Int, Int, inout DicomMRImage) -> Bool = { _, _, _ in true }) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for k in 0..<nz {
            for t in 0..<nt {
                var m = image(k, t)
                guard damage(k, t, &m) else { continue }
                let px = m.rows == ny && m.columns == nx ? pixels(k, t) : [UInt16](repeating: 7, count: m.rows * m.columns)
                try DicomMRWriter.write(m, pixels: px, to: "\(folder)/\(description)_\(k)_\(t).dcm")
            }
        }
    }

    static let rules = SeriesRules(minPhases: 2, minSlices: 3)
}

/// Runs a command; returns its exit status and combined output.
@discardableResult
func runTool(_ path: String, _ args: [String]) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    do { try p.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The path of an executable on PATH (or in /usr/bin), or nil.
func findTool(_ name: String) -> String? {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
    return dirs.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
