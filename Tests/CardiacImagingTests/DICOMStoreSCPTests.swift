import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import CardiacImaging

/// The DICOM receiver end to end over loopback: DCMTK's storescp with the repository's
/// end-of-study script (Config/storescp/), a phantom study sent with storescu, the study
/// folder landing in the inbox in one piece, and read back.
@Suite(.enabled(if: findTool("storescp") != nil && findTool("storescu") != nil, "DCMTK's storescp/storescu (Debian: dcmtk) are needed"))
struct DICOMStoreSCPTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Config/storescp/storescp-eostudy.sh").standardized.path

    /// A TCP port nothing listens on right now (bound to 0, read back, released).
    func freePort() -> UInt16? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        return bound ? UInt16(bigEndian: addr.sin_port) : nil
    }

    func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return condition()
    }

    @Test func receivedStudyLandsInTheInboxAndReads() throws {
        let study = try DicomFixture.get()
        let root = try makeTemporaryFolder("autosam-storescp")
        defer { removeFolder(root) }
        let incoming = root + "/incoming", inbox = root + "/inbox"
        try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true)
        let port = try #require(freePort())

        let scp = Process()
        scp.executableURL = URL(fileURLWithPath: try #require(findTool("storescp")))
        scp.arguments = [
            "--aetitle", "AUTOSAM", "--output-directory", incoming, "--sort-on-study-uid", "study",
            "--eostudy-timeout", "2", "--exec-on-eostudy", "/bin/sh \(Self.script) #p \(inbox)",
            "--accept-all", "--log-level", "error", "\(port)",
        ]
        let log = Pipe()
        scp.standardOutput = log
        scp.standardError = log
        try scp.run()
        defer {
            // SIGKILL: a child spawned from a test thread inherits its blocked-signal mask,
            // so storescp would not see SIGTERM here (under systemd it stops on SIGTERM).
            if scp.isRunning { kill(scp.processIdentifier, SIGKILL) }
            scp.waitUntilExit()
        }
        // Wait until it answers a C-ECHO.
        let echo = try #require(findTool("echoscu"))
        #expect(waitFor(seconds: 15) { runTool(echo, ["-aec", "AUTOSAM", "127.0.0.1", "\(port)"]).status == 0 }, "storescp did not start")

        let sent = runTool(try #require(findTool("storescu")), [
            "-aec", "AUTOSAM", "--scan-directories", "--recurse", "127.0.0.1", "\(port)", study.folder,
        ])
        #expect(sent.status == 0, "storescu: \(sent.output.suffix(500))")

        // The study folder appears in the inbox complete (all files at once), then reads.
        var landed: [String] = []
        let arrived = waitFor(seconds: 30) {
            landed = ((try? FileManager.default.contentsOfDirectory(atPath: inbox)) ?? []).filter { !$0.hasPrefix(".") }
            return !landed.isEmpty
        }
        #expect(arrived, "no study folder in the inbox")
        guard arrived else { return }
        #expect(landed.count == 1 && landed[0].hasPrefix("study_"))
        let folder = inbox + "/" + landed[0]
        #expect(try DicomScanner.files(in: folder).count == study.fileCount)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: incoming)) ?? []).isEmpty, "the study left the incoming folder")
        let cine = try DicomStudyReader.readCine(folder: folder)
        #expect(cine.volume.shape == study.shape)
        #expect(cine.volume.geometry.affine.maxAbsDifference(study.geometry.affine) < 1e-4)
    }
}
