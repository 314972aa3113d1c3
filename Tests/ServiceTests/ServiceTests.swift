import AutoSAM
import CardiacImaging
import Foundation
import QC
import Testing
#if canImport(Glibc)
import Glibc
#endif

@testable import Service

/// The configuration file: defaults, the commented example, environment overrides, and errors
/// that name the key.
@Suite struct ServiceConfigTests {
    static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Config/autosam.toml").path

    @Test func exampleFileHoldsEveryKeyWithItsDefault() throws {
        let text = try String(contentsOfFile: Self.example, encoding: .utf8)
        let c = try ServiceConfig.parse(text, source: Self.example)
        let d = ServiceConfig()
        #expect(c.summary == d.summary)
        #expect(c.seriesRules == SeriesRules.default)
        // Every key is written out (uncommented) in its section.
        var section = ""
        var present = Set<String>()
        for line in text.split(separator: "\n") {
            let l = line.trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("[") && l.hasSuffix("]") { section = String(l.dropFirst().dropLast()) }
            else if !l.hasPrefix("#"), let eq = l.firstIndex(of: "=") {
                present.insert(section + "." + l[..<eq].trimmingCharacters(in: .whitespaces))
            }
        }
        #expect(present == Set(ServiceConfig.allKeys))
    }

    @Test func environmentOverridesKeys() throws {
        let c = try ServiceConfig.parse("[inbox]\nquiet_period_s = 5\n", environment: [
            "AUTOSAM_INBOX_QUIET_PERIOD_S": "7.5", "AUTOSAM_PATHS_DATA": "/srv/a", "AUTOSAM_SEGMENTATION_FRAMES": "all",
            "AUTOSAM_SERIES_RULES_MIN_PHASES": "3", "AUTOSAM_REFIT_ENABLED": "false",
            "AUTOSAM_SERIES_RULES_AVOID_DESCRIPTIONS": "[\"scout\"]",
        ])
        #expect(c.quietPeriod == 7.5 && c.inboxPath == "/srv/a/inbox" && c.frames == .all && c.seriesRules.minPhases == 3)
        #expect(!c.refitEnabled && c.seriesRules.avoidDescriptions == ["scout"])
    }

    @Test func pacsDestinationsParse() throws {
        let c = try ServiceConfig.parse("[pacs]\ndestinations = [\"PACS@10.0.0.5:104\", \"ORTHANC@pacs.example.org:4242\"]\ncalling_ae = \"CARDIO\"\n",
                                        environment: ["AUTOSAM_PACS_TIMEOUT_S": "12"])
        #expect(c.pacsDestinations == [DicomDestination(aeTitle: "PACS", host: "10.0.0.5", port: 104),
                                       DicomDestination(aeTitle: "ORTHANC", host: "pacs.example.org", port: 4242)])
        #expect(c.pacsCallingAE == "CARDIO" && c.pacsTimeout == 12)
        #expect(DicomDestination("PACS@[::1]:104")?.host == "[::1]")
        #expect(DicomDestination("tls:PACS@host:2762") == DicomDestination(aeTitle: "PACS", host: "host", port: 2762, tls: true))
        #expect(DicomDestination("tls:PACS@host:2762")?.description == "tls:PACS@host:2762")
    }

    /// An unreachable destination is a clear error naming it, quickly (nothing listens there).
    @Test func sendingToNobodyNamesTheDestination() throws {
        let port = Int(try #require(freeTCPPort()))
        let d = DicomDestination(aeTitle: "NOBODY", host: "127.0.0.1", port: port)
        let folder = try makeTempFolder()
        defer { removeTempFolder(folder) }
        let file = try Fixtures.dicomStudy(2, into: folder).folder
        let one = try #require(try FileManager.default.subpathsOfDirectory(atPath: file).first { $0.hasSuffix(".dcm") })
        do {
            _ = try DicomSender.store([file + "/" + one], to: d, callingAE: "AUTOSAM", timeoutSeconds: 5)
            Issue.record("a C-STORE to a closed port must fail")
        } catch {
            #expect("\(error)".contains("NOBODY@127.0.0.1:\(port)"), "\(error)")
        }
    }

    @Test func badConfigurationsNameTheKey() {
        let cases: [(String, [String: String], String)] = [
            ("[inbox]\nquiet_periodd = 3\n", [:], "unknown key 'quiet_periodd' in [inbox]"),
            ("[inboxx]\n", [:], "unknown section [inboxx]"),
            ("[inbox]\nquiet_period_s = \"soon\"\n", [:], "inbox.quiet_period_s must be a number"),
            ("[inbox]\nquiet_period_s = -1\n", [:], "inbox.quiet_period_s must be a number >= 0"),
            ("[segmentation]\nframes = \"some\"\n", [:], "segmentation.frames must be one of \"ed_es\", \"all\""),
            ("[paths]\ndata = \"relative\"\n", [:], "paths.data must be an absolute path"),
            ("[paths]\noutbox = \"inbox/out\"\n", [:], "must not lie inside the inbox"),
            ("[paths]\narchive = \"failed\"\n", [:], "are the same folder"),
            ("[series_rules]\navoid_descriptions = [\"([\"]\n", [:], "not a valid regular expression"),
            ("[model]\nencoder = \"/no/such/sam.pth\"\n", [:], "no checkpoint file"),
            ("[inbox\n", [:], "not valid TOML"),
            ("[refit]\nepoch_samples = 1000000000\n", [:], "refit.epoch_samples must be a whole number in 0...100000"),
            ("", ["AUTOSAM_INBOX_MAX_ATTEMPTS": "many"], "AUTOSAM_INBOX_MAX_ATTEMPTS must be a whole number"),
            ("", ["AUTOSAM_REFIT_ENABLED": "perhaps"], "AUTOSAM_REFIT_ENABLED must be true or false"),
            ("[pacs]\ndestinations = [\"PACS@host\"]\n", [:], "pacs.destinations must be a list of \"AE@host:port\""),
            ("[pacs]\ndestinations = [\"@host:104\"]\n", [:], "pacs.destinations must be a list"),
            ("[pacs]\ndestinations = [\"PACS@host:70000\"]\n", [:], "pacs.destinations must be a list"),
            ("[pacs]\ndestinations = [\"AN_AE_TITLE_TOO_LONG@host:104\"]\n", [:], "pacs.destinations must be a list"),
            ("[pacs]\ncalling_ae = \"\"\n", [:], "pacs.calling_ae must be an AE title"),
            ("[pacs]\nretry_backoff_s = 60\nretry_backoff_max_s = 10\n", [:], "pacs.retry_backoff_max_s (10.0) is below"),
            ("[pacs]\ndestinations = [\"tls:PACS@host:2762\"]\n", [:], "pacs.tls_trusted_certificates is needed"),
            ("[pacs]\ntls_certificate = \"/etc/hostname\"\n", [:], "pacs.tls_certificate and pacs.tls_private_key go together"),
            ("[pacs]\ntls_trusted_certificates = \"/no/such/ca.pem\"\n", [:], "pacs.tls_trusted_certificates: no readable file"),
        ]
        for (text, env, expected) in cases {
            do {
                _ = try ServiceConfig.parse(text, environment: env)
                Issue.record("accepted: \(text) \(env)")
            } catch let e as ConfigError {
                #expect(e.description.contains(expected), "\(e.description)")
            } catch {
                Issue.record("\(error)")
            }
        }
    }
}

/// sd_notify over a unix datagram socket, both a path and an abstract name.
@Suite struct SystemdNotifyTests {
    /// A datagram socket bound at `name` ('@' first: abstract); returns its descriptor.
    static func bind(_ name: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(name.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in for (i, b) in bytes.enumerated() { buf[i] = b } }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, len) } }
        try #require(rc == 0, "bind \(name): \(String(cString: strerror(errno)))")
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func receive(_ fd: Int32) -> String? {
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buf, buf.count, 0)
        return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
    }

    @Test func sendsToPathAndAbstractSockets() throws {
        let dir = try makeTempFolder()
        defer { removeTempFolder(dir) }
        for name in [dir + "/notify.sock", "@autosam-test-\(UUID().uuidString.prefix(8))"] {
            let fd = try Self.bind(name)
            defer { close(fd) }
            let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "500000"])
            #expect(n.isActive && n.watchdogInterval == 0.5)
            n.ready(status: "ready\nnow")
            #expect(Self.receive(fd) == "READY=1\nSTATUS=ready now")
            n.watchdog()
            #expect(Self.receive(fd) == "WATCHDOG=1")
            n.stopping(status: "bye")
            #expect(Self.receive(fd) == "STOPPING=1\nSTATUS=bye")
        }
        // Not under systemd: nothing is sent and nothing fails.
        let none = SystemdNotifier(environment: [:])
        #expect(!none.isActive && none.watchdogInterval == nil && !none.send("READY=1"))
        // A watchdog meant for another process is not ours to feed.
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"]).watchdogInterval == nil)
    }

    /// The daemon says READY once it serves, feeds the watchdog, and says STOPPING on the way out.
    @Test func daemonSendsReadyWatchdogAndStopping() throws {
        let name = "@autosam-test-\(UUID().uuidString.prefix(8))"
        let fd = try Self.bind(name)
        defer { close(fd) }
        let h = try ServiceHarness()
        try h.start(environment: ["NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"])
        var got: [String] = []
        let end = Date().addingTimeInterval(60)
        while Date() < end, got.filter({ $0 == "WATCHDOG=1" }).count < 3 || !got.contains(where: { $0.hasPrefix("READY=1") }) {
            if let m = Self.receive(fd) { got.append(m) }
        }
        #expect(got.contains { $0.hasPrefix("READY=1\nSTATUS=ready") })
        #expect(got.filter { $0 == "WATCHDOG=1" }.count >= 3)
        #expect(h.stop())
        var tail: [String] = []
        while let m = Self.receive(fd) {
            tail.append(m)
            if m.hasPrefix("STOPPING=1") { break }
        }
        #expect(tail.contains { $0.hasPrefix("STOPPING=1") })
    }
}

/// cohort.csv written before the uncertainty columns existed gets them on its next row.
@Suite struct CohortMigrationTests {
    @Test func anOldCohortFileGetsTheNewColumnsEmpty() {
        let header = "a,b,uncertainty,review"
        let old = "a,b\n1,x\n2,y\n"
        #expect(ServiceDaemon.withHeader(old, header: header, added: 2) == "a,b,uncertainty,review\n1,x,,\n2,y,,\n")
        // Already current, or something else entirely: kept as it is.
        #expect(ServiceDaemon.withHeader("a,b,uncertainty,review\n1,x,0.1,no\n", header: header, added: 2) == "a,b,uncertainty,review\n1,x,0.1,no\n")
        #expect(ServiceDaemon.withHeader("q,r\n1,2\n", header: header, added: 2) == "q,r\n1,2\n")
    }
}
