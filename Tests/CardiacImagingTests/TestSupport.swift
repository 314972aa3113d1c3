import Foundation
import Testing

@testable import CardiacImaging

/// A fresh temporary folder, removed by the caller's `defer`.
func makeTemporaryFolder(_ name: String = "autosam-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func removeFolder(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

/// Python cross-checks: independent readers (nibabel, scipy) run as subprocesses. Where the
/// modules are missing the checks are skipped, except when AUTOSAM_REQUIRE_PYTHON_CHECKS=1
/// (set by CI), where a missing module fails the test.
enum PythonTool {
    static let required = ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_PYTHON_CHECKS"] == "1"

    static let scriptFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Python").path

    /// Runs `python3 args...`; returns stdout, or nil when python3 fails.
    static func run(_ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        _ = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func has(_ modules: String...) -> Bool {
        run(["-c", "import " + modules.joined(separator: ", ")]) != nil
    }

    /// Whether a cross-check should run: modules present, or required (then it fails loudly).
    static func shouldRun(_ modules: String...) -> Bool {
        required || run(["-c", "import " + modules.joined(separator: ", ")]) != nil
    }

    /// Runs a script from Tests/CardiacImagingTests/Python and decodes its JSON output.
    static func json(_ script: String, _ args: [String]) throws -> Any {
        guard let text = run([scriptFolder + "/" + script] + args) else {
            throw ImagingError.invalidArgument("python3 \(script) failed (are its modules installed?)")
        }
        return try JSONSerialization.jsonObject(with: Data(text.utf8))
    }
}
