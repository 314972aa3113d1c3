import CardiacImaging
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Service

/// A real Orthanc (Debian's package) on loopback, in a folder of its own, reached over DICOM
/// (C-STORE) and its REST API (through curl).
final class OrthancPeer: @unchecked Sendable {
    static let executable = ["/usr/sbin/Orthanc", "/usr/bin/Orthanc"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var available: Bool { executable != nil && pathTool("curl") != nil }
    /// CI sets AUTOSAM_REQUIRE_PEERS=1: a missing Orthanc is then a failure, not a skip.
    static var required: Bool { ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_PEERS"] == "1" }
    let root: String
    let dicomPort: Int, httpPort: Int
    private var process: Process?

    init(root: String, modalities: [String: [Any]] = [:], tls: [String: Any] = [:]) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        dicomPort = Int(try #require(freeTCPPort()))
        httpPort = Int(try #require(freeTCPPort()))
        let config: [String: Any] = [
            "Name": "autosam-test", "StorageDirectory": root + "/storage", "IndexDirectory": root + "/storage",
            "DicomAet": "ORTHANC", "DicomPort": dicomPort, "HttpPort": httpPort, "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false, "DicomCheckCalledAet": true, "Plugins": [String](), "ConcurrentJobs": 1,
            "DicomModalities": modalities,
        ].merging(tls) { _, b in b }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: root + "/orthanc.json"))
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(Self.executable))
        p.arguments = [root + "/orthanc.json"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        process = p
        #expect(try waitFor(30) { (try? self.get("/system")) != nil }, "Orthanc did not answer on port \(httpPort)")
    }

    /// Shuts Orthanc down through its REST API (a signal may stay blocked: a process
    /// started from a test thread inherits that thread's signal mask), killing it if it has
    /// not exited within 20 s.
    func stop() {
        guard let p = process else { return }
        if let curl = pathTool("curl") { _ = try? runTool(curl, ["-sf", "-X", "POST", "http://127.0.0.1:\(httpPort)/tools/shutdown"]) }
        let end = Date().addingTimeInterval(20)
        while p.isRunning && Date() < end { Thread.sleep(forTimeInterval: 0.1) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        process = nil
    }

    /// GET on the REST API, parsed as JSON.
    func get(_ path: String) throws -> Any {
        let (status, out) = try runTool(try #require(pathTool("curl")), ["-sf", "http://127.0.0.1:\(httpPort)\(path)"])
        guard status == 0, let data = out.data(using: .utf8) else { throw ConfigError("GET \(path) failed (\(status))") }
        return try JSONSerialization.jsonObject(with: data)
    }

    /// POST on the REST API (`body`: text, or `@file` for a file's bytes).
    @discardableResult
    func post(_ path: String, _ body: String) throws -> String {
        let (status, out) = try runTool(try #require(pathTool("curl")), ["-sf", "-X", "POST", "--data-binary", body, "http://127.0.0.1:\(httpPort)\(path)"])
        guard status == 0 else { throw ConfigError("POST \(path) failed (\(status)): \(out.prefix(300))") }
        return out
    }

    /// Orthanc's identifier of the study with this Study Instance UID.
    func studyID(_ uid: String) throws -> String? {
        let studies = try #require(try get("/studies?expand") as? [[String: Any]])
        return studies.first { ($0["MainDicomTags"] as? [String: Any])?["StudyInstanceUID"] as? String == uid }?["ID"] as? String
    }

    /// Every stored instance's SOP Class, SOP Instance and Study Instance UIDs.
    func instances() throws -> [(sopClass: String, sopInstance: String, study: String)] {
        let ids = try #require(try get("/instances") as? [String])
        return try ids.map { id in
            let tags = try #require(try get("/instances/\(id)/simplified-tags") as? [String: Any])
            return (tags["SOPClassUID"] as? String ?? "", tags["SOPInstanceUID"] as? String ?? "", tags["StudyInstanceUID"] as? String ?? "")
        }
    }

    deinit { stop() }
}

/// An executable on the PATH.
func pathTool(_ name: String) -> String? {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A TCP port nothing listens on right now (bound to 0, read back, released).
func freeTCPPort() -> UInt16? {
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

/// Results to the PACS: the daemon sends each DICOM study's SEGs, SR and QC picture to a real
/// Orthanc; with Orthanc down they wait in the journal (and `autosam status` says so), and
/// arrive exactly once when it is back, across a restart of the daemon too.
@Suite(.serialized, .enabled(if: OrthancPeer.available || OrthancPeer.required, "Orthanc (Debian: orthanc) and curl are needed"))
struct PacsTests {
    static let sopClasses: Set<String> = [DicomSOPClass.segmentation, "1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.7"]

    @Test func resultsReachOrthancOnceThroughAnOutageAndARestart() throws {
        try #require(OrthancPeer.available, "Orthanc or curl is missing (AUTOSAM_REQUIRE_PEERS=1)")
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let orthanc = try OrthancPeer(root: src + "/orthanc")
        let h = try ServiceHarness(quiet: 0.4) { c in
            c.pacsDestinations = [DicomDestination(aeTitle: "ORTHANC", host: "127.0.0.1", port: orthanc.dicomPort)]
            c.pacsRetryBackoff = 0.5
            c.pacsRetryBackoffMax = 2
            c.pacsTimeout = 5
        }
        let studies = try (0..<3).map { try Fixtures.dicomStudy(5 + $0, into: src + "/s\($0)") }
        let studyUIDs = try studies.map { try DicomStudyReader.readCine(folder: $0.folder, rules: h.config.seriesRules).info.studyInstanceUID }

        // 1. Orthanc up: the first study's four results arrive.
        try orthanc.start()
        try h.start()
        try slowCopy(studies[0].folder, to: h.inbox + "/study0", pause: 0)
        #expect(try h.waitFinished(["study0"], timeout: 120))
        #expect(try waitFor(60) { try orthanc.instances().count == 4 }, "\((try? orthanc.instances()).map { "\($0)" } ?? "?")")
        // 2. Orthanc down: the second study is done all the same; its results wait, and the
        //    status names the failing destination.
        orthanc.stop()
        try slowCopy(studies[1].folder, to: h.inbox + "/study1", pause: 0)
        #expect(try h.waitFinished(["study1"], timeout: 120))
        #expect(try waitFor(30) { try h.journal().sends().contains { $0.state == "pending" && $0.attempts >= 1 } })
        let down = try ServiceStatus.read(config: h.config)
        #expect(down.pacs.count == 1 && down.pacs[0].sent == 4 && down.pacs[0].pending == 4 && down.pacs[0].lastError != nil, "\(down.pacs)")
        #expect(down.text.contains("FAILING"), "\(down.text)")
        // 3. The daemon restarts while Orthanc is still down, a third study comes; then
        //    Orthanc is back and everything arrives.
        #expect(h.stop())
        try h.start()
        try slowCopy(studies[2].folder, to: h.inbox + "/study2", pause: 0)
        #expect(try h.waitFinished(["study2"], timeout: 120))
        try orthanc.start()
        #expect(try waitFor(60) { try h.journal().sends().allSatisfy { $0.state == "sent" } }, "\((try? h.journal().sends()).map { "\($0)" } ?? "?")")
        #expect(h.stop())
        // Exactly once each: 3 studies x (2 SEGs, SR, QC picture), in the right studies.
        let stored = try orthanc.instances()
        #expect(stored.count == 12 && Set(stored.map(\.sopInstance)).count == 12, "\(stored)")
        for uid in studyUIDs {
            let mine = stored.filter { $0.study == uid }
            #expect(mine.count == 4 && Set(mine.map(\.sopClass)) == Self.sopClasses, "\(uid): \(mine)")
        }
        let sends = try h.journal().sends()
        #expect(sends.count == 12 && Set(sends.map(\.path)).count == 12)
        let up = try ServiceStatus.read(config: h.config)
        #expect(up.pacs.first?.sent == 12 && up.pacs.first?.pending == 0 && !up.text.contains("FAILING"))
        orthanc.stop()
    }

    /// Receiving from the PACS and answering it: 10 studies stored in Orthanc are sent by
    /// Orthanc (C-STORE) to DCMTK's storescp with the repository's end-of-study script, land in
    /// the inbox, are segmented, and their results go back to Orthanc; Orthanc is restarted
    /// while results are coming back. Every result arrives exactly once, in its study.
    @Test func tenStudiesFromOrthancComeBackSegmentedOnce() throws {
        try #require(OrthancPeer.available, "Orthanc or curl is missing (AUTOSAM_REQUIRE_PEERS=1)")
        let storescp = try #require(pathTool("storescp"), "DCMTK's storescp is needed")
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let scpPort = Int(try #require(freeTCPPort()))
        let orthanc = try OrthancPeer(root: src + "/orthanc", modalities: ["autosam": ["AUTOSAM", "127.0.0.1", scpPort]])
        let h = try ServiceHarness(quiet: 0.4) { c in
            c.pacsDestinations = [DicomDestination(aeTitle: "ORTHANC", host: "127.0.0.1", port: orthanc.dicomPort)]
            c.pacsRetryBackoff = 0.5
            c.pacsRetryBackoffMax = 2
            c.pacsTimeout = 5
        }
        // storescp: one folder per study, moved into the inbox at the end of each study.
        let incoming = src + "/incoming"
        try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Config/storescp/storescp-eostudy.sh").standardized.path
        let scp = Process()
        scp.executableURL = URL(fileURLWithPath: storescp)
        scp.arguments = ["--aetitle", "AUTOSAM", "--output-directory", incoming, "--sort-on-study-uid", "study",
                         "--eostudy-timeout", "2", "--exec-on-eostudy", "/bin/sh \(script) #p \(h.inbox)", "--accept-all",
                         "--log-level", "error", "\(scpPort)"]
        scp.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        scp.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try scp.run()
        defer {
            // SIGKILL: a child of a test thread inherits its blocked signals (see OrthancPeer.stop).
            if scp.isRunning { kill(scp.processIdentifier, SIGKILL) }
            scp.waitUntilExit()
        }
        try orthanc.start()
        // Ten studies into Orthanc.
        var uids: [String] = []
        var uploaded = 0
        for n in 0..<10 {
            let study = try Fixtures.dicomStudy(1 + n, into: src + "/s\(n)")
            uids.append(try DicomStudyReader.readCine(folder: study.folder, rules: h.config.seriesRules).info.studyInstanceUID)
            for f in try FileManager.default.subpathsOfDirectory(atPath: study.folder).sorted() {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: study.folder + "/" + f, isDirectory: &isDir), !isDir.boolValue else { continue }
                try orthanc.post("/instances", "@" + study.folder + "/" + f)
                uploaded += 1
            }
        }
        #expect(Set(uids).count == 10 && uploaded >= 10 * 4)
        #expect(try orthanc.instances().count == uploaded)
        try h.start()
        // Orthanc sends them to us.
        for uid in uids { try orthanc.post("/modalities/autosam/store", try #require(try orthanc.studyID(uid))) }
        // Results come back; restart Orthanc once some have.
        #expect(try waitFor(300) { try orthanc.instances().count >= uploaded + 8 })
        orthanc.stop()
        Thread.sleep(forTimeInterval: 2)
        try orthanc.start()
        let allBack = try waitFor(300) {
            let s = try h.states(), sends = try h.journal().sends()
            return s.count == 10 && s.values.allSatisfy { $0 == .done } && sends.count == 40 && sends.allSatisfy { $0.state == "sent" }
        }
        #expect(allBack, "\((try? h.states()).map { "\($0)" } ?? "?")")
        #expect(h.stop())
        let stored = try orthanc.instances()
        #expect(stored.count == uploaded + 40 && Set(stored.map(\.sopInstance)).count == stored.count, "\(stored.count) stored, \(uploaded) uploaded")
        for uid in uids {
            let results = stored.filter { $0.study == uid && Self.sopClasses.contains($0.sopClass) }
            #expect(results.count == 4 && Set(results.map(\.sopClass)) == Self.sopClasses, "\(uid): \(results)")
        }
        orthanc.stop()
    }

    /// A CA, and a certificate with its key signed by it, made with openssl in `dir`.
    static func makeCertificates(_ dir: String) throws -> (ca: String, server: (String, String), client: (String, String), otherCA: String) {
        let openssl = try #require(pathTool("openssl"), "openssl is needed")
        func run(_ args: [String]) throws {
            let (status, out) = try runTool(openssl, args)
            try #require(status == 0, "openssl \(args.joined(separator: " ")): \(out)")
        }
        for ca in ["ca", "other"] {
            try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=autosam test \(ca)",
                     "-keyout", "\(dir)/\(ca).key", "-out", "\(dir)/\(ca).crt"])
        }
        for name in ["server", "client"] {
            try run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr"])
            try run(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/ca.crt", "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
                     "-days", "2", "-out", "\(dir)/\(name).crt"])
        }
        return ("\(dir)/ca.crt", ("\(dir)/server.crt", "\(dir)/server.key"), ("\(dir)/client.crt", "\(dir)/client.key"), "\(dir)/other.crt")
    }

    /// Over TLS: an Orthanc that requires TLS and a client certificate gets a study's results
    /// from the daemon (`tls:` destination); an association whose peer certificate we do not
    /// trust, or without our certificate, is refused.
    @Test func resultsReachOrthancOverTLS() throws {
        try #require(OrthancPeer.available, "Orthanc or curl is missing (AUTOSAM_REQUIRE_PEERS=1)")
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let certs = try Self.makeCertificates(src)
        let orthanc = try OrthancPeer(root: src + "/orthanc", tls: [
            "DicomTlsEnabled": true, "DicomTlsCertificate": certs.server.0, "DicomTlsPrivateKey": certs.server.1,
            "DicomTlsTrustedCertificates": certs.ca, "DicomTlsRemoteCertificateRequired": true,
        ])
        let destination = DicomDestination(aeTitle: "ORTHANC", host: "127.0.0.1", port: orthanc.dicomPort, tls: true)
        let h = try ServiceHarness(quiet: 0.4) { c in
            c.pacsDestinations = [destination]
            c.pacsTLSTrusted = certs.ca
            c.pacsTLSCertificate = certs.client.0
            c.pacsTLSPrivateKey = certs.client.1
            c.pacsRetryBackoff = 0.5
            c.pacsRetryBackoffMax = 2
            c.pacsTimeout = 5
        }
        try h.config.validate()
        let study = try Fixtures.dicomStudy(4, into: src + "/s")
        let uid = try DicomStudyReader.readCine(folder: study.folder, rules: h.config.seriesRules).info.studyInstanceUID
        try orthanc.start()
        // Refused: a peer certificate we do not trust; no client certificate.
        let one = study.folder + "/" + (try #require(try FileManager.default.subpathsOfDirectory(atPath: study.folder).first {
            var d: ObjCBool = false
            return FileManager.default.fileExists(atPath: study.folder + "/" + $0, isDirectory: &d) && !d.boolValue
        }))
        for files in [DicomTLSFiles(trustedCertificates: certs.otherCA, certificate: certs.client.0, privateKey: certs.client.1),
                      DicomTLSFiles(trustedCertificates: certs.ca)] {
            do {
                _ = try DicomSender.store([one], to: destination, callingAE: "AUTOSAM", timeoutSeconds: 5, tls: files)
                Issue.record("an association the TLS check should refuse was made: \(files)")
            } catch {
                #expect("\(error)".contains("no association with tls:ORTHANC@127.0.0.1"), "\(error)")
            }
        }
        #expect(try orthanc.instances().isEmpty)
        // Accepted: the daemon's results.
        try h.start()
        try slowCopy(study.folder, to: h.inbox + "/study", pause: 0)
        #expect(try h.waitFinished(["study"], timeout: 120))
        #expect(try waitFor(60) { try orthanc.instances().count == 4 })
        #expect(h.stop())
        let stored = try orthanc.instances()
        #expect(stored.allSatisfy { $0.study == uid } && Set(stored.map(\.sopClass)) == Self.sopClasses, "\(stored)")
        orthanc.stop()
    }
}
