import AutoSAM
import CardiacImaging
import Foundation
import Testing

@testable import Service

/// kill -9 at every journal state change and every step of publishing (AUTOSAM_CRASH_AT), then
/// a restart: each study ends in one defined state exactly once: done with one outputs folder,
/// one cohort row and its input archived, or failed with its input and reason in failed/;
/// nothing is left in the inbox or in work/, and no staging folder survives.
@Suite(.serialized) struct FaultInjectionTests {
    static let donePoints = ["claim.recorded", "claim.moved", "processing.recorded", "publish.staged", "publish.renamed",
                             "finish.cohort", "finish.archived", "finish.done"]
    static let failPoints = ["fail.reasoned", "fail.moved", "fail.recorded"]

    static func binary() throws -> String {
        try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
    }

    @Test func everyPointIsCovered() {
        #expect(Set(Self.donePoints + Self.failPoints + ["refit.training"]) == Set(FaultInjection.points))
    }

    /// kill -9 in the middle of a refit's training: the next start records the refit as
    /// abandoned, keeps the labelled volumes pending, refits again to an outcome, and the model
    /// store holds only whole versions (each loads).
    @Test func killNineDuringARefitThenRestartAbandonsItAndRefitsAgain() throws {
        let bin = try Self.binary()
        let fm = FileManager.default
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let process = DaemonProcessTests()
        let config = try process.writeConfig(root, extra: "[refit]\nevery_n_volumes = 1\nepochs = 3\nvalidation_volumes = 1")
        let src = root + "/src"
        let acdc = try Fixtures.acdcPatient(14, into: src)
        let pair = try RefitLoopTests().niftiPair(15, into: src)
        let labels = root + "/data/labels"
        let first = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log", environment: ["AUTOSAM_CRASH_AT": "refit.training"])
        #expect(try waitFor(60) { (try? process.journal(root).studies()) != nil })
        // The first item becomes the validation pool (a refit with nothing to train: skipped).
        try fm.copyItem(atPath: acdc, toPath: labels + "/acdc_item")
        #expect(try waitFor(90) { try process.journal(root).refits().first?.outcome == "skipped" }, "\(first.log)")
        try fm.copyItem(atPath: pair, toPath: labels + "/pair_item")
        #expect(first.waitExit(180), "the refit never trained")
        #expect(first.process.terminationReason == .uncaughtSignal && first.process.terminationStatus == SIGKILL)
        let during = try process.journal(root).refits()
        #expect(during.count == 2 && during.last?.outcome == nil, "\(during)")

        let second = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log")
        let refitted = try waitFor(180) {
            let r = try process.journal(root).refits()
            return r.count >= 3 && r.last?.outcome != nil
        }
        let stopped = second.stop()
        #expect(stopped)
        try #require(refitted, "\(second.log)")
        let refits = try process.journal(root).refits()
        #expect(refits[1].outcome == "abandoned", "\(refits)")
        #expect(["promoted", "accepted", "rejected"].contains(refits[2].outcome ?? ""), "\(refits)")
        #expect(try process.journal(root).pendingLabelledVolumes() == 0)
        let store = try ModelStore(root: root + "/data/models")
        for v in try store.versions() { #expect((try? store.load(v)) != nil, "version \(v) does not load") }
    }

    /// A SIGTERM that arrives while the signal is blocked (a mask inherited from the parent,
    /// before the handlers exist) is pending; installing the handlers must not discard it.
    @Test func aStopAskedForDuringStartUpIsNotLost() throws {
        let h = try ServiceHarness()
        let daemon = try ServiceDaemon(config: h.config, log: ServiceLog(level: .debug, environment: [:], sink: { _ in }))
        var set = sigset_t(), old = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &set, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        pthread_kill(pthread_self(), SIGTERM)
        #expect(!daemon.state.stopRequested)
        daemon.installSignalHandlers()
        #expect(daemon.state.stopRequested)
    }

    /// A study during which the daemon dies `inbox.max_attempts` times (kill -9 right after
    /// each start of processing) is set aside in failed/ with the reason, so that it cannot stop
    /// the service again.
    @Test func aStudyDuringWhichTheDaemonDiesMaxAttemptsTimesIsSetAside() throws {
        let bin = try Self.binary()
        let fm = FileManager.default
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let process = DaemonProcessTests()
        let config = try process.writeConfig(root)
        _ = try Fixtures.shortCine(19, to: root + "/p19.nii.gz", frames: 2)
        let env = ["AUTOSAM_INBOX_MAX_ATTEMPTS": "2"]
        for attempt in 1...2 {
            let d = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log",
                                                   environment: env.merging(["AUTOSAM_CRASH_AT": "processing.recorded"]) { $1 })
            if attempt == 1 {
                #expect(try waitFor(60) { (try? process.journal(root).studies()) != nil })
                try dropIntoInbox(root + "/p19.nii.gz", inbox: root + "/data/inbox", as: "p19.nii.gz")
            }
            #expect(d.waitExit(120), "attempt \(attempt) never started")
            #expect(d.process.terminationReason == .uncaughtSignal)
        }
        let last = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log", environment: env)
        let ended = try waitFor(60) { try process.journal(root).studies().first?.state == .failed }
        _ = last.stop()
        try #require(ended, "\(last.log)")
        let rec = try #require(try process.journal(root).studies().first)
        #expect(rec.reason?.contains("the daemon stopped during each of 2 attempts") == true, "\(rec.reason ?? "")")
        #expect(fm.fileExists(atPath: root + "/data/failed/p19/p19.nii.gz"))
        #expect((try? String(contentsOfFile: root + "/data/failed/p19/reason.txt", encoding: .utf8))?.contains("inbox.max_attempts = 2") == true)
        #expect(try fm.contentsOfDirectory(atPath: root + "/data/outbox").filter { $0 != "cohort.csv" }.isEmpty)
    }

    @Test(arguments: donePoints + failPoints)
    func killNineAtThePointThenRestartEndsOnceInADefinedState(_ point: String) throws {
        let bin = try Self.binary()
        let fm = FileManager.default
        let root = try makeTempFolder()
        defer { removeTempFolder(root) }
        let process = DaemonProcessTests()
        let config = try process.writeConfig(root)
        let failing = Self.failPoints.contains(point)
        let name = failing ? "junk.nii.gz" : "p16.nii.gz"
        let src = root + "/src." + name
        if failing {
            try BadInputs.junk(500, seed: 5).write(to: URL(fileURLWithPath: src))
        } else {
            _ = try Fixtures.shortCine(16, to: src, frames: 2)
        }
        let data = root + "/data"
        let first = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log", environment: ["AUTOSAM_CRASH_AT": point])
        #expect(try waitFor(60) { (try? process.journal(root).studies()) != nil })
        try dropIntoInbox(src, inbox: data + "/inbox", as: name)
        #expect(first.waitExit(120), "the daemon never reached \(point)")
        #expect(first.process.terminationReason == .uncaughtSignal && first.process.terminationStatus == SIGKILL)
        #expect(first.log.contains("crash injected at \(point)"), "\(first.log)")

        let second = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/daemon.log")
        let ended = try waitFor(120) {
            let s = try process.journal(root).studies()
            return s.count == 1 && (s[0].state == .done || s[0].state == .failed)
        }
        let stopped = second.stop()
        #expect(stopped, "\(point): SIGTERM did not stop the daemon:\n\(second.log)")
        try #require(ended, "\(point): the study did not end:\n\(second.log)")
        let j = try process.journal(root)
        let rec = try #require(try j.studies().first)
        let stem = Journal.stem(name)
        let outbox = try fm.contentsOfDirectory(atPath: data + "/outbox").sorted()
        if failing {
            #expect(rec.state == .failed && rec.reason?.contains("NIfTI") == true, "\(point): \(rec.state) \(rec.reason ?? "")")
            #expect(try fm.contentsOfDirectory(atPath: data + "/failed") == [stem], "\(point)")
            let reason = try String(contentsOfFile: data + "/failed/\(stem)/reason.txt", encoding: .utf8)
            #expect(reason.contains("Journal number: \(rec.id)") && reason.contains("NIfTI"), "\(point): \(reason)")
            #expect(fm.fileExists(atPath: data + "/failed/\(stem)/\(name)"), "\(point): the input is not kept in failed/")
            #expect(!outbox.contains(stem))
        } else {
            #expect(rec.state == .done, "\(point): \(rec.state) \(rec.reason ?? "")")
            #expect(try j.doneEvents(rec.id) == 1)
            #expect(outbox == ["cohort.csv", stem], "\(point): \(outbox)")
            let rows = try String(contentsOfFile: data + "/outbox/cohort.csv", encoding: .utf8).split(separator: "\n")
            #expect(rows.count == 2, "\(point): \(rows)")
            #expect(try fm.contentsOfDirectory(atPath: data + "/archive") == [name], "\(point)")
            #expect(fm.fileExists(atPath: data + "/outbox/\(stem)/provenance.json"))
            #expect(try fm.contentsOfDirectory(atPath: data + "/failed").isEmpty)
        }
        #expect(try fm.contentsOfDirectory(atPath: data + "/inbox").isEmpty, "\(point)")
        let work = try fm.contentsOfDirectory(atPath: data + "/work")
        #expect(work.isEmpty, "\(point): \(work)")
        #expect(!stopped || second.process.terminationStatus == 0)
    }
}
