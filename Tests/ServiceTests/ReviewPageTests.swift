import AutoSAM
import Foundation
import Testing

@testable import Service

/// The review page (`autosam web`) against a running daemon with phantom studies, driven over
/// HTTP and in headless Chromium by `Python/review_browser.py` (selenium, Debian's chromium and
/// chromium-driver; the bootstrap installs them and CI requires them through
/// AUTOSAM_REQUIRE_PEERS=1). Screenshots are kept under `$AUTOSAM_TEST_ARTIFACTS/review`
/// (default `.build/test-artifacts/review`).
@Suite(.serialized) struct ReviewPageTests {
    static var browserAvailable: Bool {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
              let python = pathTool("python3"), let r = try? runTool(python, ["-c", "import selenium"]) else { return false }
        return r.status == 0
    }

    static var artifacts: String {
        if let a = ProcessInfo.processInfo.environment["AUTOSAM_TEST_ARTIFACTS"] { return a + "/review" }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/test-artifacts/review").path
    }

    @Test func loginTraversalCSRFAndTheStudyPagesInARealBrowser() throws {
        let required = ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_PEERS"] == "1"
        guard Self.browserAvailable else {
            if required { Issue.record("chromium-driver or python3-selenium is missing (AUTOSAM_REQUIRE_PEERS=1)") }
            return
        }
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let root = try makeTempFolder("autosam-review")
        defer { removeTempFolder(root) }
        let port = try #require(freeTCPPort())
        let session = 15.0
        let config = try DaemonProcessTests().writeConfig(root, extra: """
            [web]
            listen = "127.0.0.1:\(port)"
            session_minutes = \(session / 60)
            """)
        // A model store of two versions of the test head, the first current: the page promotes
        // the second and rolls back.
        let store = try Fixtures.modelStore(root + "/data/models", versions: 2)
        let daemon = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log")
        defer { _ = daemon.stop() }
        let src = root + "/src"
        let inbox = root + "/data/inbox"
        try #require(try waitFor(60) { FileManager.default.fileExists(atPath: inbox) }, "\(daemon.log)")
        for n in [3, 4] {
            let p = try Fixtures.acdcPatient(n, into: src)
            try dropIntoInbox(p, inbox: inbox, as: (p as NSString).lastPathComponent)
        }
        let journal = { try Journal(path: root + "/data/journal.sqlite", readOnly: true) }
        try #require(try waitFor(300, "two studies done") { ((try? journal().studies(state: .done))?.count ?? 0) == 2 }, "\(daemon.log)")

        let password = "correct horse battery"
        let add = try runTool("/bin/sh", ["-c", "printf '%s\\n' \"$1\" | \"$2\" web-user --config \"$3\" alice", "sh", password, bin, config])
        try #require(add.status == 0, "\(add.output)")
        let tooShort = try runTool("/bin/sh", ["-c", "printf 'short\\n' | \"$1\" web-user --config \"$2\" bob", "sh", bin, config])
        #expect(tooShort.status != 0 && tooShort.output.contains("at least 10 characters"), "\(tooShort.output)")

        let web = Process()
        web.executableURL = URL(fileURLWithPath: bin)
        web.arguments = ["web", "--config", config]
        let webLog = root + "/web.log"
        _ = FileManager.default.createFile(atPath: webLog, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: webLog))
        web.standardOutput = h
        web.standardError = h
        try web.run()
        defer { web.terminate(); web.waitUntilExit() }
        let logText = { (try? String(contentsOfFile: webLog, encoding: .utf8)) ?? "" }
        try #require(try waitFor(60) { logText().contains("listening on 127.0.0.1:\(port)") }, "\(logText())")

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Python/review_browser.py").path
        let r = try runTool(try #require(pathTool("python3")), [
            script, "http://127.0.0.1:\(port)", "alice", password, root + "/data", Self.artifacts, String(session),
        ])
        #expect(r.status == 0, "\(r.output)\nweb log:\n\(logText())")
        for check in ["login required", "security headers", "bad logins refused", "login", "traversal refused", "forged requests refused",
                      "promote and roll back", "annotate next lists 2 studies, input downloads",
                      "studies list shows 2 studies", "study pages", "logout", "idle session expired"] {
            #expect(r.output.contains("ok " + check), "missing check '\(check)':\n\(r.output)")
        }
        // The two actions, in the model store and in the journal with who did them; the forged
        // ones left no trace.
        #expect(try store.current() == "v0001")
        let actions = try journal().actions()
        #expect(actions.map(\.action) == ["rollback", "promote"])
        #expect(actions.allSatisfy { $0.detail.hasPrefix("alice: ") })
        #expect(try store.metrics("v0002").events.map(\.action) == ["promoted", "rolled back"])
        #expect(web.isRunning, "the web process died:\n\(logText())")
    }
}
