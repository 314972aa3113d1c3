import CardiacImaging
import Foundation
import Testing

@testable import Service

/// The daemon as the built binary: kill -9 mid-study and restart, SIGTERM, and the systemd unit.
@Suite(.serialized) struct DaemonProcessTests {
    /// The daemon process with its configuration file and log.
    final class Spawned {
        let process = Process()
        let logPath: String

        init(binary: String, config: String, log: String, environment: [String: String] = [:]) throws {
            logPath = log
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["watch", "--config", config]
            var env = ProcessInfo.processInfo.environment
            for k in env.keys where k.hasPrefix("AUTOSAM_") || k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" { env[k] = nil }
            for (k, v) in environment { env[k] = v }
            process.environment = env
            FileManager.default.createFile(atPath: log, contents: nil)
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            h.seekToEndOfFile()
            process.standardOutput = h
            process.standardError = h
            try process.run()
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        func waitExit(_ timeout: Double) -> Bool {
            let end = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < end { usleep(20_000) }
            return !process.isRunning
        }

        /// SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns whether SIGTERM
        /// alone stopped it.
        func stop(_ timeout: Double = 30) -> Bool {
            kill(process.processIdentifier, SIGTERM)
            if waitExit(timeout) { return true }
            kill(process.processIdentifier, SIGKILL)
            _ = waitExit(10)
            return false
        }
    }

    /// `model`: the [model] section's encoder line (and more), the demo encoder by default.
    func writeConfig(_ root: String, extra: String = "", model: String = "encoder = \"demo\"") throws -> String {
        let path = root + "/autosam.toml"
        try """
            [paths]
            data = "\(root)/data"
            [model]
            \(model)
            head = "\(try Fixtures.head())"
            [inbox]
            quiet_period_s = 0.3
            poll_interval_s = 0.1
            [segmentation]
            frames = "all"
            [log]
            level = "debug"
            \(extra)
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func journal(_ root: String) throws -> Journal { try Journal(path: root + "/data/journal.sqlite", readOnly: true) }

    /// bf16 asked for on a CPU without bfloat16 products (an AVX2-only EPYC; here oneDNN capped
    /// at AVX2 stands in for one): `autosam info` says so, the daemon says so once in its log,
    /// and the study's provenance records fp32 as what ran, bf16 as what was asked, and why.
    @Test func bf16WithoutTheCPUForItRunsInFP32AndSaysSo() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let info = Process()
        info.executableURL = URL(fileURLWithPath: bin)
        info.arguments = ["info"]
        info.environment = ProcessInfo.processInfo.environment.merging(["ONEDNN_MAX_CPU_ISA": "AVX2"]) { $1 }
        let pipe = Pipe()
        info.standardOutput = pipe
        try info.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        info.waitUntilExit()
        #expect(info.terminationStatus == 0)
        #expect(text.contains("CPU features: ") && text.contains("oneDNN avx2"), "\(text)")
        #expect(text.contains("precision bf16: bf16 was asked for, but this CPU has no bfloat16 matrix products"), "\(text)")

        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let config = try writeConfig(root, model: "encoder = \"demo\"\nprecision = \"bf16\"")
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        _ = try Fixtures.shortCine(13, to: src + "/p13.nii.gz", frames: 2)
        let daemon = try Spawned(binary: bin, config: config, log: root + "/daemon.log", environment: ["ONEDNN_MAX_CPU_ISA": "AVX2"])
        #expect(try waitFor(60) { (try? journal(root).studies()) != nil })
        try FileManager.default.copyItem(atPath: src + "/p13.nii.gz", toPath: root + "/data/inbox/.p13.nii.gz")
        #expect(rename(root + "/data/inbox/.p13.nii.gz", root + "/data/inbox/p13.nii.gz") == 0)
        let finished = try waitFor(150) { try journal(root).studies().first?.state == .done }
        kill(daemon.process.processIdentifier, SIGTERM)
        #expect(daemon.waitExit(30))
        try #require(finished, "\(daemon.log)")
        #expect(daemon.log.contains("precision fp32") && daemon.log.contains("running in fp32"), "\(daemon.log)")
        let prov = try JSONDecoder().decode(Provenance.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/data/outbox/p13/provenance.json")))
        #expect(prov.encoder.precision == "fp32" && prov.encoder.precisionRequested == "bf16")
        #expect(prov.encoder.precisionNote?.contains("running in fp32") == true)
        #expect(prov.encoder.cpu?.contains("avx2") == true)
    }

    /// A pretrained encoder whose weights are not on the machine: the daemon refuses to start,
    /// exits non-zero and says how to get them; it never falls back to another encoder.
    @Test func withoutTheLiteMedSAMWeightsTheDaemonRefusesToStartAndSaysHow() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let config = try writeConfig(root, model: "encoder = \"litemedsam\"")
        let daemon = try Spawned(binary: bin, config: config, log: root + "/daemon.log",
                                 environment: ["AUTOSAM_WEIGHTS_DIR": root + "/no-weights-here"])
        #expect(daemon.waitExit(60), "the daemon kept running without its encoder")
        #expect(daemon.process.terminationStatus != 0)
        let log = daemon.log
        #expect(log.contains("cannot load the encoder 'litemedsam'") && log.contains("scripts/fetch_weights.sh")
                && log.contains(root + "/no-weights-here/lite_medsam.pth"), "\(log)")
        #expect(!FileManager.default.fileExists(atPath: root + "/data/outbox/cohort.csv"))
    }

    /// kill -9 while a study is being segmented; the next start redoes it, and it ends done
    /// exactly once: one outputs folder, one cohort row, one archived input, attempts 2.
    @Test func killNineMidStudyThenRestartCompletesExactlyOnce() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let config = try writeConfig(root)
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        // A cine segmented frame by frame: long enough to be caught in the middle.
        try Fixtures.shortCine(12, to: src + "/p12.nii.gz", frames: 6)
        let first = try Spawned(binary: bin, config: config, log: root + "/daemon.log")
        #expect(try waitFor(60) { (try? journal(root).studies()) != nil })
        try FileManager.default.copyItem(atPath: src + "/p12.nii.gz", toPath: root + "/data/inbox/.p12.nii.gz")
        #expect(rename(root + "/data/inbox/.p12.nii.gz", root + "/data/inbox/p12.nii.gz") == 0)
        let caught = try waitFor(90) { try journal(root).studies().first?.state == .processing }
        try #require(caught, "the study never reached processing:\n\(first.log)")
        usleep(300_000)
        kill(first.process.processIdentifier, SIGKILL)
        #expect(first.waitExit(10))
        let mid = try #require(try journal(root).studies().first)
        #expect(mid.state == .processing, "killed before the study finished: \(mid.state)")
        #expect(!FileManager.default.fileExists(atPath: root + "/data/outbox/p12"))

        let second = try Spawned(binary: bin, config: config, log: root + "/daemon.log")
        let finished = try waitFor(150) { try journal(root).studies().first?.state == .done }
        kill(second.process.processIdentifier, SIGTERM)
        #expect(second.waitExit(30))
        #expect(finished, "\(second.log)")
        let j = try journal(root)
        let rec = try #require(try j.studies().first)
        #expect(try j.studies().count == 1 && rec.state == .done && rec.attempts == 2)
        #expect(try j.doneEvents(rec.id) == 1)
        let outbox = try FileManager.default.contentsOfDirectory(atPath: root + "/data/outbox").sorted()
        #expect(outbox == ["cohort.csv", "p12"])
        let csv = try String(contentsOfFile: root + "/data/outbox/cohort.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/data/archive") == ["p12.nii.gz"])
        let prov = try JSONDecoder().decode(Provenance.self, from: Data(contentsOf: URL(fileURLWithPath: root + "/data/outbox/p12/provenance.json")))
        #expect(prov.attempt == 2 && prov.journalId == rec.id)
        #expect(second.process.terminationStatus == 0)
    }

    /// SIGTERM mid-study: the daemon stops within seconds with status 0, the study goes back to
    /// the queue with its input intact, and the next start completes it.
    @Test func sigtermAbandonsTheStudySafelyAndExitsCleanly() throws {
        let bin = try #require(autosamBinary(), "the autosam binary")
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let config = try writeConfig(root)
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        try Fixtures.shortCine(13, to: src + "/p13.nii.gz", frames: 6)
        let first = try Spawned(binary: bin, config: config, log: root + "/daemon.log")
        #expect(try waitFor(60) { (try? journal(root).studies()) != nil })
        try FileManager.default.copyItem(atPath: src + "/p13.nii.gz", toPath: root + "/data/inbox/.p13.nii.gz")
        #expect(rename(root + "/data/inbox/.p13.nii.gz", root + "/data/inbox/p13.nii.gz") == 0)
        try #require(try waitFor(90) { try journal(root).studies().first?.state == .processing }, "\(first.log)")
        let t0 = Date()
        kill(first.process.processIdentifier, SIGTERM)
        #expect(first.waitExit(30))
        let stopSeconds = Date().timeIntervalSince(t0)
        #expect(first.process.terminationStatus == 0, "\(first.log)")
        #expect(stopSeconds < 20, "stopping took \(stopSeconds) s")
        let rec = try #require(try journal(root).studies().first)
        #expect(rec.state == .claimed || rec.state == .done, "\(rec.state)")
        if rec.state == .claimed {
            #expect(rec.attempts == 0 && FileManager.default.fileExists(atPath: rec.workPath))
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: root + "/data/outbox")).contains { $0.hasPrefix(".staging") })
            let second = try Spawned(binary: bin, config: config, log: root + "/daemon.log")
            let done = try waitFor(150) { try journal(root).studies().first?.state == .done }
            kill(second.process.processIdentifier, SIGTERM)
            #expect(second.waitExit(30))
            #expect(done, "\(second.log)")
        }
    }

    /// `systemd-analyze verify` accepts the daemon's and the review page's units and
    /// `systemd-analyze security` rates each 3.0 or lower (skipped where systemd-analyze is
    /// missing).
    @Test(arguments: ["autosam.service", "autosam-web.service"])
    func systemdUnitVerifiesAndIsHardened(_ name: String) throws {
        let sa = "/usr/bin/systemd-analyze"
        guard FileManager.default.isExecutableFile(atPath: sa) else { return }
        let bin = try #require(autosamBinary(), "the autosam binary")
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let unit = try String(contentsOfFile: repo + "/systemd/" + name, encoding: .utf8)
        if name == "autosam.service" {
            #expect(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("Restart=on-failure"))
        } else {
            #expect(unit.contains("autosam web --config") && unit.contains("IPAddressDeny=any") && unit.contains("Restart=on-failure"))
        }
        // verify checks that ExecStart exists: point it at the built binary.
        let dir = try makeTempFolder()
        defer { removeTempFolder(dir) }
        try unit.replacingOccurrences(of: "/usr/local/bin/autosam", with: bin).write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        let (rc, out) = try runTool(sa, ["verify", dir + "/" + name])
        #expect(rc == 0, "systemd-analyze verify: \(out)")
        let (rc2, sec) = try runTool(sa, ["security", "--offline=true", dir + "/" + name])
        #expect(rc2 == 0, "\(sec)")
        let line = try #require(sec.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let value = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) })
        #expect(value <= 3.0, "\(line)")
    }
}

/// The daemon's memory over many studies (about a minute; AUTOSAM_SOAK=0 skips it): the
/// resident set after the last of 200 studies is within 15% (+ 20 MB) of what it was after
/// the first 20, when the caches and allocator pools have filled.
@Suite(.serialized) struct DaemonSoakTests {
    static func rssKB(_ pid: Int32) -> Int? {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return s.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) }
    }

    @Test(.disabled(if: ProcessInfo.processInfo.environment["AUTOSAM_SOAK"] == "0"))
    func memoryStaysFlatOver200Studies() throws {
        let bin = try #require(autosamBinary())
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        try """
            [paths]
            data = "\(root)/data"
            [model]
            head = "\(try Fixtures.head())"
            [inbox]
            quiet_period_s = 0.05
            poll_interval_s = 0.05
            """.write(toFile: root + "/autosam.toml", atomically: true, encoding: .utf8)
        let daemon = try DaemonProcessTests.Spawned(binary: bin, config: root + "/autosam.toml", log: root + "/daemon.log")
        defer { kill(daemon.process.processIdentifier, SIGTERM); _ = daemon.waitExit(30) }
        #expect(try waitFor(60) { (try? Journal(path: root + "/data/journal.sqlite", readOnly: true).studies()) != nil })
        let src = root + "/src.nii.gz"
        try NIfTI.write(BadInputs.volume(nx: 64, ny: 56, nz: 2, nt: 1), to: src)
        let j = try Journal(path: root + "/data/journal.sqlite", readOnly: true)
        var samples: [(Int, Int)] = []
        for i in 0..<200 {
            try FileManager.default.copyItem(atPath: src, toPath: root + "/data/inbox/.s\(i).nii.gz")
            #expect(rename(root + "/data/inbox/.s\(i).nii.gz", root + "/data/inbox/s\(i).nii.gz") == 0)
            let ok = try waitFor(60) { (try j.counts()[.done] ?? 0) + (try j.counts()[.failed] ?? 0) >= i + 1 }
            try #require(ok, "study \(i) did not finish:\n\(daemon.log.suffix(2000))")
            if (i + 1) % 20 == 0, let r = Self.rssKB(daemon.process.processIdentifier) { samples.append((i + 1, r)) }
        }
        #expect(try j.counts()[.done] == 200)
        let base = samples.first!.1, last = samples.last!.1
        print("RSS after n studies (kB): " + samples.map { "\($0.0): \($0.1)" }.joined(separator: ", "))
        #expect(Double(last) <= Double(base) * 1.15 + 20_000, "RSS grew from \(base) kB to \(last) kB")
    }
}
