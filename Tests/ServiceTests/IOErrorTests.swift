import CardiacImaging
import Foundation
import Testing

@testable import Service

#if canImport(Glibc)
import Glibc
#endif

/// EIO, as a failing disk gives it, on the outbox, on work/ and on the journal: the daemon (the
/// built binary) runs with a small interposer preloaded (Native/eio_inject.c) that fails the
/// chosen calls on paths under one folder while a switch file exists. Each fault ends in a
/// defined state with a reason (the study kept, never failed for the server's fault), the
/// daemon keeps running, and once the disk heals the study completes exactly once.
@Suite(.serialized) struct IOErrorTests {
    /// The interposer, built once from its source with the C compiler of this machine.
    static let library: Result<String, Error> = Result {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Native/eio_inject.c").path
        let out = try makeTempFolder("autosam-eio") + "/eio_inject.so"
        var tried: [String] = []
        for cc in ["cc", "clang", "gcc"] {
            let r = try runTool("/usr/bin/env", [cc, "-shared", "-fPIC", "-O1", "-o", out, source, "-ldl"])
            if r.status == 0 { return out }
            tried.append("\(cc): \(r.output.prefix(300))")
        }
        throw StudyError("cannot build the EIO interposer: \(tried.joined(separator: "; "))")
    }

    /// A data folder, a daemon with the interposer aimed at `under` (relative to the data
    /// folder) for `ops`, and the switch that turns the fault on and off.
    final class Rig {
        let root: String
        let data: String
        let switchPath: String
        let daemon: DaemonProcessTests.Spawned
        let process = DaemonProcessTests()

        init(under: String, ops: String) throws {
            let lib = try IOErrorTests.library.get()
            root = try makeTempFolder("autosam-eio-rig")
            data = root + "/data"
            switchPath = root + "/eio.on"
            let config = try process.writeConfig(root, extra: "")
            daemon = try DaemonProcessTests.Spawned(binary: try FaultInjectionTests.binary(), config: config, log: root + "/daemon.log", environment: [
                "LD_PRELOAD": lib, "EIO_INJECT_UNDER": data + "/" + under, "EIO_INJECT_OPS": ops, "EIO_INJECT_SWITCH": switchPath,
                "AUTOSAM_INBOX_RETRY_BACKOFF_S": "1", "AUTOSAM_INBOX_RETRY_BACKOFF_MAX_S": "2",
                // Under `make asan` the interposer is loaded before the sanitizer's runtime.
                "ASAN_OPTIONS": (ProcessInfo.processInfo.environment["ASAN_OPTIONS"].map { $0 + ":" } ?? "") + "verify_asan_link_order=0",
            ])
            #expect(try waitFor(60) { daemon.log.contains("ready in") }, "\(daemon.log)")
        }

        func arm() { FileManager.default.createFile(atPath: switchPath, contents: nil) }
        func heal() { unlink(switchPath) }
        /// How many calls the interposer has failed.
        var injected: Int { ((try? String(contentsOfFile: switchPath + ".log", encoding: .utf8)) ?? "").split(separator: "\n").count }
        func journal() throws -> Journal { try process.journal(root) }
        func studies() throws -> [StudyRecord] { try journal().studies() }

        func drop(_ n: Int) throws -> Data {
            let src = root + "/src/p\(n).nii.gz"
            try FileManager.default.createDirectory(atPath: root + "/src", withIntermediateDirectories: true)
            _ = try Fixtures.shortCine(n, to: src, frames: 2)
            try dropIntoInbox(src, inbox: data + "/inbox", as: "p\(n).nii.gz")
            return try Data(contentsOf: URL(fileURLWithPath: src))
        }

        /// Turns the fault on, drops patient `n` into the inbox and waits until `reached`.
        func faultThenDrop(_ n: Int, timeout: Double = 60, until reached: () throws -> Bool) throws -> Data {
            arm()
            let bytes = try drop(n)
            #expect(try waitFor(timeout, "", reached), "\(daemon.log.suffix(3000))")
            return bytes
        }

        /// Whether the study has been retried at least twice.
        func retriedTwice() throws -> Bool { try studies().first?.writeFailures ?? 0 >= 2 }

        /// Heals, waits for the study to be done, stops the daemon, and checks that it ended
        /// once: one outputs folder, one cohort row, the input archived whole, nothing left.
        func healAndCheckDoneOnce(_ n: Int, bytes: Data) throws {
            heal()
            let done = try waitFor(90) { try studies().first?.state == .done }
            let stopped = daemon.stop()
            #expect(stopped, "\(daemon.log)")
            try #require(done, "\(daemon.log.suffix(3000))")
            let fm = FileManager.default
            let recs = try studies()
            #expect(recs.count == 1, "\(recs)")
            #expect(fm.fileExists(atPath: data + "/outbox/p\(n)/provenance.json"))
            #expect(fm.fileExists(atPath: data + "/outbox/p\(n)/labels_ed.nii.gz"))
            let outputs = try fm.contentsOfDirectory(atPath: data + "/outbox").filter { $0 != "cohort.csv" }
            #expect(outputs == ["p\(n)"], "\(outputs)")
            let cohort = try String(contentsOfFile: data + "/outbox/cohort.csv", encoding: .utf8)
            #expect(cohort.split(separator: "\n").filter { $0.hasPrefix("\(recs[0].id),") }.count == 1, "\(cohort)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: data + "/archive/p\(n).nii.gz")) == bytes)
            #expect(try fm.contentsOfDirectory(atPath: data + "/inbox").isEmpty)
            #expect(try fm.contentsOfDirectory(atPath: data + "/work").isEmpty)
            #expect(try fm.contentsOfDirectory(atPath: data + "/failed").isEmpty, "\(FileTree.walk(data + "/failed").map(\.path))")
            #expect(!daemon.log.contains("p\(n).nii"), "the log names the study")
        }

        deinit {
            if daemon.process.isRunning { _ = daemon.stop(5) }
            removeTempFolder(root)
        }
    }

    /// Every write, flush and new name in the outbox fails: the study is retried with its input
    /// kept in work/ (neither archived nor failed), no staging folder is left, and it completes
    /// once the disk heals.
    @Test func eioOnTheOutboxKeepsTheStudyUntilTheDiskHeals() throws {
        let rig = try Rig(under: "outbox", ops: "write")
        let bytes = try rig.faultThenDrop(16, until: rig.retriedTwice)
        let rec = try #require(try rig.studies().first)
        #expect(rec.state != .done && rec.state != .failed)
        #expect(rec.reason?.contains("Input/output error") == true, "\(rec.reason ?? "")")
        #expect(FileManager.default.fileExists(atPath: rec.workPath))
        #expect(try FileManager.default.contentsOfDirectory(atPath: rig.data + "/outbox").filter { !$0.hasPrefix("cohort") }.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: rig.data + "/archive").isEmpty)
        #expect(rig.injected > 0)
        try rig.healAndCheckDoneOnce(16, bytes: bytes)
    }

    /// Reading the input in work/ fails (a bad sector): not the study's fault, so it is not
    /// failed; it is kept in work/ and retried with a reason that says the disk could not
    /// deliver it, and completes once the disk heals.
    @Test func eioReadingTheInputRetriesInsteadOfFailingTheStudy() throws {
        let rig = try Rig(under: "work", ops: "read")
        let bytes = try rig.faultThenDrop(17, until: rig.retriedTwice)
        let rec = try #require(try rig.studies().first)
        #expect(rec.state == .retry || rec.state == .claimed || rec.state == .processing, "\(rec.state)")
        #expect(rec.reason?.contains("from disk: Input/output error") == true, "\(rec.reason ?? "")")
        #expect(FileManager.default.fileExists(atPath: rec.workPath))
        #expect(rig.daemon.log.contains("the input could not be read from disk"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: rig.data + "/failed").isEmpty)
        try rig.healAndCheckDoneOnce(17, bytes: bytes)
    }

    /// Nothing can be created in work/: the claim cannot move the study, so it stays whole in
    /// the inbox with no journal row, and is claimed once the disk heals.
    @Test func eioOnTheWorkFolderLeavesTheStudyInTheInbox() throws {
        let rig = try Rig(under: "work", ops: "write")
        let bytes = try rig.faultThenDrop(18, timeout: 30) { rig.daemon.log.contains("could not be moved into the work folder") }
        #expect(try rig.studies().isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: rig.data + "/inbox/p18.nii.gz")) == bytes)
        #expect(rig.injected > 0)
        try rig.healAndCheckDoneOnce(18, bytes: bytes)
    }

    /// The journal's writes and flushes fail when a study arrives: the claim fails in the
    /// journal before anything moves, the daemon keeps running (waiting longer after each
    /// failed round), and the study is claimed once the disk heals.
    @Test func eioOnTheJournalAtTheClaimLeavesTheStudyInTheInbox() throws {
        let rig = try Rig(under: "journal.sqlite", ops: "write")
        let bytes = try rig.faultThenDrop(19, timeout: 30) { rig.daemon.log.contains("loop:") && rig.daemon.log.contains("failed round 2") }
        #expect(rig.daemon.process.isRunning)
        #expect(FileManager.default.fileExists(atPath: rig.data + "/inbox/p19.nii.gz"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: rig.data + "/work").isEmpty)
        try rig.healAndCheckDoneOnce(19, bytes: bytes)
        #expect(rig.daemon.log.contains("loop: working again"))
    }

    /// The journal fails while a study is being segmented, so that it cannot record the end
    /// (the outputs are written, the input archived, the row still says `processing`): once the
    /// disk heals the same run takes the study up again, finds its outputs and records it done,
    /// without redoing it and without a second outputs folder or cohort row.
    @Test func eioOnTheJournalMidStudyIsSettledInTheSameRun() throws {
        let rig = try Rig(under: "journal.sqlite", ops: "write")
        let bytes = try rig.drop(20)
        #expect(try waitFor(60) { rig.daemon.log.contains("study #1 (nifti): attempt 1") }, "\(rig.daemon.log.suffix(3000))")
        rig.arm()
        #expect(try waitFor(60) { rig.daemon.log.contains("failed round 2") }, "\(rig.daemon.log.suffix(3000))")
        let rec = try #require(try rig.studies().first)
        #expect(rec.state == .processing, "the end of the attempt reached the journal (armed too late?)")
        #expect(FileManager.default.fileExists(atPath: rig.data + "/outbox/p20/provenance.json"))
        try rig.healAndCheckDoneOnce(20, bytes: bytes)
        #expect(rig.daemon.log.contains("the journal could not record how attempt 1 ended"), "\(rig.daemon.log.suffix(3000))")
        #expect(try rig.studies().first?.attempts == 1, "\(rig.daemon.log.suffix(4000))")
        #expect(rig.daemon.log.components(separatedBy: "study #1 (nifti): attempt").count == 2, "segmented twice")
    }
}
