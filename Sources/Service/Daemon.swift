import AutoSAM
import CardiacImaging
import Dispatch
import Foundation
import Tensor

#if canImport(Glibc)
import Glibc
#endif

/// `autosam watch`: claims studies from the inbox once they are complete, segments them,
/// writes the outputs, keeps the journal, takes labelled volumes for refits, and talks to
/// systemd. One worker: studies run one at a time, oldest first; refits only when none waits.
/// With `[queue] backend = "postgres"` several such workers share one queue (and one set of
/// folders on a shared file system): every claim, study, refit and label is decided in the
/// database first (`PostgresJournal`).
public final class ServiceDaemon: @unchecked Sendable {
    public let config: ServiceConfig
    public let journal: any StudyJournal
    let log: ServiceLog
    let notifier: SystemdNotifier
    let state = DaemonState()
    let models: ModelProvider
    /// Inbox items seen but not yet quiet: name -> (fingerprint, when it last changed).
    var tracker: [String: (String, Double)] = [:]
    var labelTracker: [String: (String, Double)] = [:]
    /// Inbox entries whose move into work/ failed (full or unwritable work folder): left in the
    /// inbox and not claimed again before `until`; the wait doubles with each failure.
    var claimBackoff: [String: (until: Double, failures: Int)] = [:]
    var signalSources: [DispatchSourceSignal] = []
    /// Sends results to the PACS destinations (nil when none is configured).
    var sender: PacsSender?
    /// A study's attempt ended by a journal error: its row may still read `processing`.
    var journalUnsettled = false
    /// The wall clock (journal times, retry times, refit intervals); a test may set it back or
    /// forward. Intervals measured within a run (quiet periods, back-offs, sleeps, the
    /// watchdog's heartbeat) use the monotonic clock instead, which no clock change moves.
    var wallClock: @Sendable () -> Double = { Date().timeIntervalSince1970 }
    /// This process's part of its staging folders' names (a shared queue).
    let stagingTag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    /// Seconds on CLOCK_MONOTONIC.
    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// The window of due retries: up to now, or later than any back-off could have set (the
    /// clock went back after it was set).
    var retryWindow: (now: Double, latest: Double) {
        let now = wallClock()
        return (now, now + config.retryBackoffMax + 60)
    }

    public init(config: ServiceConfig, log: ServiceLog? = nil, notifier: SystemdNotifier = SystemdNotifier()) throws {
        self.config = config
        self.log = log ?? ServiceLog(level: config.logLevel)
        self.notifier = notifier
        for p in [config.inboxPath, config.outboxPath, config.archivePath, config.failedPath, config.labelsPath,
                  config.modelsPath, config.workPath, config.cachePath, config.trainingPath] {
            do { try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) } catch {
                throw ConfigError("cannot create the folder \(p): \(error.localizedDescription)")
            }
        }
        journal = try openJournal(config)
        models = ModelProvider(config: config)
    }

    /// Asks the loop to stop after (or by safely abandoning) the current study.
    public func requestStop() { state.requestStop() }

    /// SIGTERM and SIGINT request a stop; the loop notices within a poll interval or between
    /// two frames of a study.
    public func installSignalHandlers() {
        // A stop asked for before now, while the signals were blocked (a parent's mask is
        // inherited), is pending; ignoring the signal below would discard it.
        var pending = sigset_t()
        sigpending(&pending)
        if [SIGTERM, SIGINT].contains(where: { sigismember(&pending, $0) == 1 }) {
            log.info("a stop was asked for during start-up: stopping")
            state.requestStop()
        }
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            src.setEventHandler { [weak self] in
                self?.log.info("signal \(sig): stopping")
                self?.state.requestStop()
            }
            src.resume()
            signalSources.append(src)
        }
    }

    /// Runs until a stop is requested. Throws only for problems that make serving impossible
    /// (no usable model, journal unusable); bad studies never stop the loop.
    public func run() throws {
        let start = Date()
        // One daemon per data folder, unless the queue is shared: then the database decides.
        let lock = journal.shared ? nil : try DataFolderLock(journal: config.journalPath)
        defer { lock?.release() }
        log.info("autosam \(BuildInfo.version) starting: data \(config.data), encoder \(config.encoder)"
                 + ((journal as? PostgresJournal).map { ", shared queue in PostgreSQL as worker \($0.worker)" } ?? ""))
        try models.load(log: log)
        try recover()
        state.head = models.version
        log.info(String(format: "ready in %.1f s; serving head %@", Date().timeIntervalSince(start), models.version))
        notifier.ready(status: "ready; head \(models.version)")
        let watchdog = startWatchdog()
        defer { watchdog?.cancel() }
        let heartbeat = startHeartbeat()
        defer {
            heartbeat?.cancel()
            if journal.shared { try? journal.workerStopped() }
        }
        if !config.pacsDestinations.isEmpty {
            let s = PacsSender(config: config, journal: journal, log: log)
            s.wallClock = wallClock
            s.start()
            sender = s
            log.info("sending DICOM results to \(config.pacsDestinations.map(\.description).joined(separator: ", "))")
        }
        defer { sender?.stop(); sender = nil }
        var lastStatus = ""
        var failures = 0
        while !state.stopRequested {
            state.heartbeat()
            var pause = config.pollInterval
            do {
                try scanInbox()
                let busy = try processNext() || intakeLabels() || maybeRefit()
                // An idle round proves little (it may not have needed the journal at all);
                // the count of failed rounds ends with one that did work.
                if busy && failures > 0 {
                    log.info("loop: working again after \(failures) failed round(s)")
                    failures = 0
                }
                if busy { continue }
            } catch {
                // The journal or a folder failed (a full or failing disk, an unreachable
                // database): keep going rather than die, waiting longer after each failed round
                // (up to the retry back-off).
                failures += 1
                pause = max(config.pollInterval, min(config.pollInterval * pow(2, Double(failures)), config.retryBackoffMax, 30))
                log.error("loop: \(error) (failed round \(failures); next in \(String(format: "%.1f", pause)) s)")
                if error is JournalUnavailable {
                    let status = "waiting for the database (failed round \(failures), next try in \(Int(pause.rounded(.up))) s)"
                    if status != lastStatus { notifier.status(status); lastStatus = status }
                    sleepInterruptibly(pause)
                    continue
                }
            }
            let status = idleStatus()
            if status != lastStatus {
                notifier.status(status)
                lastStatus = status
            }
            sleepInterruptibly(pause)
        }
        notifier.stopping(status: "stopping")
        log.info("stopped")
    }

    func idleStatus() -> String {
        let c = (try? journal.counts()) ?? [:]
        let waiting = (c[.claimed] ?? 0) + (c[.retry] ?? 0)
        return "idle; \(c[.done] ?? 0) done, \(c[.failed] ?? 0) failed, \(waiting) waiting; head \(models.version)"
    }

    func sleepInterruptibly(_ seconds: Double) {
        let end = Self.monotonic() + seconds
        while !state.stopRequested && Self.monotonic() < end { usleep(UInt32(min(0.05, max(0.001, end - Self.monotonic())) * 1e6)) }
    }

    /// Feeds systemd's watchdog every half interval while the worker shows progress within
    /// `stall_limit_s`; a stuck worker stops the pings and systemd restarts the service.
    func startWatchdog() -> DispatchSourceTimer? {
        guard let interval = notifier.watchdogInterval else { return nil }
        let t = DispatchSource.makeTimerSource(queue: .global())
        t.schedule(deadline: .now(), repeating: max(0.05, interval / 2))
        let limit = config.stallLimit
        t.setEventHandler { [state, notifier, log] in
            if state.sinceHeartbeat < limit { notifier.watchdog() } else { log.error("worker stalled for \(Int(state.sinceHeartbeat)) s: watchdog not fed") }
        }
        t.resume()
        return t
    }

    /// A shared queue: the worker says it is alive and renews the leases it holds, every
    /// third of the lease; a lease found taken by another worker stops the study in hand.
    func startHeartbeat() -> DispatchSourceTimer? {
        guard journal.shared else { return nil }
        let t = DispatchSource.makeTimerSource(queue: .global())
        t.schedule(deadline: .now(), repeating: max(0.2, config.queueLease / 3))
        let failing = ManagedFlag()
        t.setEventHandler { [journal, state, log] in
            do {
                let lost = try journal.heartbeat(study: state.study, done: state.done, head: state.head)
                if !lost.isEmpty {
                    state.leaseLost(lost)
                    log.warning("lease lost on study \(lost.map { "#\($0)" }.joined(separator: ", ")): another worker has taken it over")
                }
                if failing.set(false) { log.info("heartbeat: the database answers again") }
            } catch {
                if !failing.set(true) { log.error("heartbeat: \(error)") }
            }
        }
        t.resume()
        return t
    }

    // MARK: recovery

    /// After a crash: studies left processing are queued again (their attempt counted),
    /// claims whose move into the work folder did not happen are completed, staging folders
    /// are removed, and a refit that was running is closed as abandoned.
    func recover() throws {
        try journal.closeInterruptedRefits()
        if journal.shared {
            // Other workers' studies are theirs; this worker's earlier life under the same name
            // gives its studies back, and staging folders of finished studies go.
            for r in try journal.requeueProcessing(counts: { _ in true }, why: { "interrupted during attempt \($0); redone" }) {
                log.warning("study #\(r.id) was interrupted during attempt \(r.attempts); it will be redone")
            }
            let fm = FileManager.default
            for name in (try? fm.contentsOfDirectory(atPath: config.outboxPath)) ?? [] where name.hasPrefix(".staging-") {
                let id = name.dropFirst(".staging-".count).split(separator: "-").first.flatMap { Int64($0) }
                if let id, let r = try journal.study(id), r.state == .done || r.state == .failed {
                    try? fm.removeItem(atPath: config.outboxPath + "/" + name)
                }
            }
            return
        }
        for r in try journal.requeueProcessing(counts: { _ in true }, why: { "interrupted during attempt \($0); redone" }) {
            log.warning("study #\(r.id) was interrupted during attempt \(r.attempts); it will be redone")
        }
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: config.outboxPath)) ?? [] where name.hasPrefix(".staging-") {
            try? fm.removeItem(atPath: config.outboxPath + "/" + name)
        }
        for r in try journal.studies(state: .claimed) where !fm.fileExists(atPath: r.workPath) {
            let inboxPath = config.inboxPath + "/" + r.name
            if fm.fileExists(atPath: inboxPath) && published(r) == nil {
                try? moveIntoWork(inboxPath, r)
            }
        }
    }

    // MARK: inbox

    /// Top-level inbox entries that are candidate studies (hidden names and markers skipped).
    func inboxEntries() -> [String] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: config.inboxPath)) ?? []).filter { !$0.hasPrefix(".") }
        let set = Set(names)
        return names.filter { n in
            !(n.hasSuffix(config.marker) && set.contains(String(n.dropLast(config.marker.count))))
        }.sorted()
    }

    /// Claims every inbox entry that is complete: its marker is there, or nothing in it has
    /// changed (names, sizes, modification times) for the quiet period.
    func scanInbox() throws {
        let now = Self.monotonic()
        var seen = Set<String>()
        for name in inboxEntries() {
            if state.stopRequested { return }
            seen.insert(name)
            if let b = claimBackoff[name], now < b.until { continue }
            let path = config.inboxPath + "/" + name
            guard let fp = Fingerprint.of(path) else { continue }
            let marked = fp.isDirectory
                ? FileManager.default.fileExists(atPath: path + "/" + config.marker)
                : FileManager.default.fileExists(atPath: path + config.marker)
            if tracker[name]?.0 != fp.digest { tracker[name] = (fp.digest, now) }
            if marked || now - tracker[name]!.1 >= config.quietPeriod {
                try claim(name, markerFile: fp.isDirectory ? nil : path + config.marker)
            }
        }
        for k in tracker.keys where !seen.contains(k) { tracker[k] = nil }
        for k in claimBackoff.keys where !seen.contains(k) { claimBackoff[k] = nil }
    }

    func claim(_ name: String, markerFile: String?) throws {
        tracker[name] = nil
        let outbox = config.outboxPath, failed = config.failedPath
        guard let rec = try journal.claimEntry(name: name, kind: "", workFolder: config.workPath, taken: { stem in
            FileManager.default.fileExists(atPath: outbox + "/" + stem) || FileManager.default.fileExists(atPath: failed + "/" + stem)
        }) else { return }  // another worker is claiming it
        FaultInjection.point("claim.recorded")
        if journal.shared && EntryType.of(config.inboxPath + "/" + name) == nil {
            // Another worker claimed and moved it between this worker's look and its claim.
            try journal.abandonClaim(rec.id)
            return
        }
        do {
            try moveIntoWork(config.inboxPath + "/" + name, rec)
            FaultInjection.point("claim.moved")
            try? journal.claimMoved(rec.id)
            if let m = markerFile { try? FileManager.default.removeItem(atPath: m) }
            claimBackoff[name] = nil
            log.info("study #\(rec.id) claimed")
        } catch {
            // The input stays in the inbox, whole: a partial copy in work/ is removed, and the
            // entry waits before it is tried again (a full work folder must not spin the loop).
            if EntryType.of(config.inboxPath + "/" + name) != nil { try? FileTree.remove((rec.workPath as NSString).deletingLastPathComponent) }
            let failures = (claimBackoff[name]?.failures ?? 0) + 1
            let delay = min(config.retryBackoffMax, config.retryBackoff * pow(2, Double(failures - 1)))
            claimBackoff[name] = (Self.monotonic() + delay, failures)
            try journal.abandonClaim(rec.id)
            log.error("an inbox entry could not be moved into the work folder (\(redact("\(error)", rec, names: []))); it stays in the inbox and is tried again in \(Int(delay)) s")
        }
    }

    /// Moves an inbox entry to its work path: a rename (same file system), or copy and delete
    /// when the work folder lies on another file system.
    func moveIntoWork(_ from: String, _ rec: StudyRecord) throws {
        let dir = (rec.workPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try moveItem(from, rec.workPath)
    }

    func moveItem(_ from: String, _ to: String) throws {
        if rename(from, to) == 0 { return }
        let err = errno
        guard err == EXDEV else { throw StudyError("cannot move \(from) to \(to): \(String(cString: strerror(err)))") }
        // Another file system: copy as it is (links stay links, never followed), then remove.
        try FileTree.remove(to)
        try FileTree.copy(from, to)
        try FileTree.remove(from)
    }

    // MARK: studies

    func finalPath(_ r: StudyRecord) -> String { config.outboxPath + "/" + r.outputName }

    /// Where this attempt stages its outputs. Workers sharing a queue each use their own
    /// (process id and a random part), so that a worker whose lease lapsed never writes into
    /// the staging folder of the one that took the study over.
    func stagingPath(_ r: StudyRecord) -> String {
        config.outboxPath + "/.staging-\(r.id)" + (journal.shared ? "-\(stagingTag)" : "")
    }

    /// Removes this attempt's staging folder; with a shared queue also those of earlier
    /// attempts at the study by workers whose lease ran out (their publication is fenced off).
    func removeStaging(_ r: StudyRecord) {
        let fm = FileManager.default
        try? fm.removeItem(atPath: stagingPath(r))
        guard journal.shared else { return }
        for name in (try? fm.contentsOfDirectory(atPath: config.outboxPath)) ?? [] where name.hasPrefix(".staging-\(r.id)-") {
            try? fm.removeItem(atPath: config.outboxPath + "/" + name)
        }
    }

    /// Whether this study's outputs are already in the outbox (published before a crash).
    func published(_ r: StudyRecord) -> Provenance? {
        guard let data = FileManager.default.contents(atPath: finalPath(r) + "/provenance.json"),
              let p = try? JSONDecoder().decode(Provenance.self, from: data), p.journalId == r.id else { return nil }
        return p
    }

    /// Processes the next waiting study, if any. Returns whether there was one.
    func processNext() throws -> Bool {
        if journalUnsettled {
            // A study that ended by a journal error (EIO, a full disk) may still read
            // `processing`: nothing else runs now, so it goes back to the queue, as at a restart.
            for r in try journal.requeueProcessing(counts: { published($0) != nil },
                                                   why: { "the journal could not record how attempt \($0) ended; redone" }) {
                log.warning("study #\(r.id): the journal could not record how attempt \(r.attempts) ended; taken up again")
            }
            journalUnsettled = false
        }
        let window = retryWindow
        guard let rec = try journal.nextRunnable(now: window.now, latest: window.latest) else { return false }
        state.study = rec.id
        defer { state.study = nil }
        do { try process(rec) } catch let e as LeaseLost {
            // Too slow to renew (or the database was away longer than the lease): another
            // worker has the study, and this attempt leaves no trace.
            removeStaging(rec)
            log.warning("\(e.description); this worker's attempt is dropped")
        } catch {
            removeStaging(rec)
            journalUnsettled = true
            throw error
        }
        return true
    }

    func process(_ rec: StudyRecord) throws {
        let fm = FileManager.default
        if let p = published(rec) {
            // Outputs were written before an interruption: only the bookkeeping is left.
            try finish(rec, version: p.head.version, seconds: p.timings["total_s"] ?? 0, kind: p.kind)
            return
        }
        if !fm.fileExists(atPath: rec.workPath), fm.fileExists(atPath: config.inboxPath + "/" + rec.name),
           published(rec) == nil, failedEarlier(rec) == nil {
            // Claimed, but the claimer stopped before moving the input out of the inbox.
            try moveIntoWork(config.inboxPath + "/" + rec.name, rec)
            try journal.claimMoved(rec.id)
        }
        guard fm.fileExists(atPath: rec.workPath) else {
            if let reason = failedEarlier(rec) {
                // Moved to failed/ (reason.txt beside it) before a crash: only the journal is left.
                try? fm.removeItem(atPath: (rec.workPath as NSString).deletingLastPathComponent)
                try journal.markFailed(rec.id, reason: reason)
                log.warning("study #\(rec.id) failed: \(redact(reason, rec, names: []))")
                return
            }
            try journal.markFailed(rec.id, reason: "the input is missing from the work folder (\(rec.workPath))")
            log.error("study #\(rec.id): input missing from the work folder")
            return
        }
        if rec.attempts >= config.maxAttempts {
            try fail(rec, reason: "the daemon stopped during each of \(rec.attempts) attempts at this study (inbox.max_attempts = \(config.maxAttempts)); it is set aside so that it cannot stop the service again")
            return
        }
        let kind = (try? StudyInput.classify(rec.workPath).rawValue) ?? "unknown"
        try journal.markProcessing(rec.id, kind: kind)
        FaultInjection.point("processing.recorded")
        state.status = "processing study #\(rec.id) (\(kind))"
        notifier.status(state.status)
        log.info("study #\(rec.id) (\(kind)): attempt \(rec.attemptNumber)")
        let start = Date()
        removeStaging(rec)
        let staging = stagingPath(rec)
        defer { state.status = "idle" }
        let outcome: (version: String, summary: StatsSummary)
        do {
            models.refreshIfChanged(log: log)
            state.head = models.version
            let model = try models.current()
            let t0 = Date()
            try FileTree.readThrough(rec.workPath)
            let input = try StudyInput.read(rec.workPath, rules: config.seriesRules, marker: config.marker)
            let readSeconds = Date().timeIntervalSince(t0)
            var products = try StudyPipeline.compute(
                input: input, model: model, frames: config.frames, heartbeat: { [state] in state.heartbeat() },
                shouldStop: { [state] in state.stopRequested || state.isLost(rec.id) }, subject: rec.outputName,
                reviewThreshold: config.reviewUncertainty)
            products.timings["read_s"] = readSeconds
            products.timings["total_s"] = Date().timeIntervalSince(start)
            let prov = provenance(rec, input: input, products: products, model: model)
            try StudyPipeline.publish(products, input: input, provenance: prov, staging: staging, final: finalPath(rec),
                                      fence: { [journal] rename in try journal.fenced(rec.id, rename) })
            FaultInjection.point("publish.renamed")
            outcome = (model.version, StatsSummary(report: products.report, review: products.review))
            if let r = products.review, r.review {
                log.warning(String(format: "study #%lld flagged for review: uncertainty %.3f above %.3f", rec.id, r.uncertainty, r.threshold))
            }
        } catch is StopRequested {
            try? fm.removeItem(atPath: staging)
            if state.isLost(rec.id) { throw LeaseLost(study: rec.id) }
            try journal.requeue(rec.id, reason: "abandoned at shutdown; redone on the next start")
            log.info("study #\(rec.id): abandoned at shutdown, queued again")
            return
        } catch let e as OutputWriteError {
            try? fm.removeItem(atPath: staging)
            try retryLater(rec, reason: e.description, what: "outputs could not be written")
            return
        } catch let e as InputReadError {
            try? fm.removeItem(atPath: staging)
            try retryLater(rec, reason: e.description, what: "the input could not be read from disk")
            return
        } catch let e as LeaseLost {
            throw e
        } catch let e as JournalUnavailable {
            // The database went away mid-study: the study is parked (its row still reads
            // processing, held by this worker) and taken up again once the database answers.
            throw e
        } catch let e as ModelUnavailable {
            try journal.requeue(rec.id, reason: e.description)
            log.error("no model to segment with: \(e.description)")
            sleepInterruptibly(max(config.pollInterval, 5))
            return
        } catch {
            try? fm.removeItem(atPath: staging)
            try fail(rec, reason: "\(error)")
            return
        }
        // Outside the block above: an error from here on (the journal's) is the server's, never
        // a reason to fail the study; the loop settles the study's row once the journal works.
        try finish(rec, version: outcome.version, seconds: Date().timeIntervalSince(start), summary: outcome.summary, kind: kind)
    }

    /// The server, not the study, failed (a write to the outbox, a read of the input): the input
    /// stays in work/ and the study is tried again after a back-off that doubles with each failure.
    func retryLater(_ rec: StudyRecord, reason: String, what: String) throws {
        let delay = min(config.retryBackoffMax, config.retryBackoff * pow(2, Double(rec.writeFailures)))
        try journal.markRetry(rec.id, reason: reason, delay: delay)
        log.error("study #\(rec.id): \(what) (\(redact(reason, rec))); input kept, retry in \(Int(delay)) s")
    }

    /// Cohort row, archive (or delete) the input, then `done`. Each step can be repeated safely.
    func finish(_ rec: StudyRecord, version: String, seconds: Double, summary: StatsSummary? = nil, kind: String? = nil) throws {
        do {
            try journal.exclusive("cohort") {
                try appendCohortRow(rec, version: version, summary: summary ?? readSummary(rec), kind: kind ?? rec.kind)
            }
            FaultInjection.point("finish.cohort")
            try archiveInput(rec)
            FaultInjection.point("finish.archived")
        } catch {
            let delay = min(config.retryBackoffMax, config.retryBackoff * pow(2, Double(rec.writeFailures)))
            try journal.markRetry(rec.id, reason: "outputs written, but: \(error)", delay: delay)
            log.error("study #\(rec.id): bookkeeping after the outputs failed (\(redact("\(error)", rec))); retry in \(Int(delay)) s")
            return
        }
        try journal.markDone(rec.id, modelVersion: version, seconds: seconds, sends: PacsSender.sends(config: config, folder: finalPath(rec)))
        state.countDone()
        sender?.poke()
        FaultInjection.point("finish.done")
        log.info(String(format: "study #%lld done in %.1f s (head %@)", rec.id, seconds, version))
    }

    /// What the cohort row takes from a study's stats.json (cine or single frame).
    struct StatsSummary: Decodable {
        var report: FunctionReport?
        var review: ReviewInfo?
    }

    func readSummary(_ rec: StudyRecord) -> StatsSummary {
        guard let data = FileManager.default.contents(atPath: finalPath(rec) + "/stats.json"),
              let s = try? JSONDecoder().decode(StatsSummary.self, from: data) else { return StatsSummary() }
        return s
    }

    static let cohortPrefix = ["journal_id", "kind", "model_version", "processed_at"]
    /// Columns after the stats (added in session 15: a cohort.csv written before gets them, empty
    /// for its old rows, the first time a row is added).
    static let cohortSuffix = ["uncertainty", "review"]

    /// One row per study in `outbox/cohort.csv`, written atomically; a study already there is not added again.
    func appendCohortRow(_ rec: StudyRecord, version: String, summary: StatsSummary, kind: String) throws {
        let path = config.outboxPath + "/cohort.csv"
        let header = (Self.cohortPrefix + FunctionReport.csvColumns + Self.cohortSuffix).joined(separator: ",")
        var text = (FileManager.default.contents(atPath: path)).flatMap { String(data: $0, encoding: .utf8) } ?? ""
        if text.isEmpty { text = header + "\n" }
        if text.split(separator: "\n").contains(where: { $0.hasPrefix("\(rec.id),") }) { return }
        text = Self.withHeader(text, header: header, added: Self.cohortSuffix.count)
        let stats: String
        if let report = summary.report {
            stats = report.csvRow
        } else {
            stats = FunctionReport.csvColumns.enumerated().map { $0.offset == 0 ? Self.csvField(rec.outputName) : "" }.joined(separator: ",")
        }
        let review = summary.review.map { [String(format: "%.4f", $0.uncertainty), $0.review ? "yes" : "no"] } ?? ["", ""]
        let row = ["\(rec.id)", kind, Self.csvField(version), ISO8601DateFormatter().string(from: Date())].joined(separator: ",") + "," + stats
            + "," + review.joined(separator: ",")
        if !text.hasSuffix("\n") { text += "\n" }
        text += row + "\n"
        do { try AtomicFile.write(text, to: path) } catch { throw OutputWriteError("writing cohort.csv: \(error)") }
    }

    /// A cohort.csv written before its last `added` columns existed gets the current header
    /// and an empty field for each of them on every old row; any other text is kept as it is.
    static func withHeader(_ text: String, header: String, added: Int) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first, first != header, header.hasPrefix(first + ",") else { return text }
        lines[0] = header
        for i in 1..<lines.count where !lines[i].isEmpty { lines[i] += String(repeating: ",", count: added) }
        return lines.joined(separator: "\n")
    }

    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    func archiveInput(_ rec: StudyRecord) throws {
        let fm = FileManager.default
        let workDir = (rec.workPath as NSString).deletingLastPathComponent
        if fm.fileExists(atPath: rec.workPath) {
            if config.deleteInputs {
                try FileTree.remove(rec.workPath)
            } else {
                var dest = config.archivePath + "/" + rec.name
                if fm.fileExists(atPath: dest) { dest = config.archivePath + "/\(rec.id)-" + rec.name }
                try moveItem(rec.workPath, dest)
            }
        }
        try? fm.removeItem(atPath: workDir)
    }

    /// Moves the input to `failed/<study>/` with `reason.txt`, and records the failure.
    func fail(_ rec: StudyRecord, reason rawReason: String) throws {
        let fm = FileManager.default
        // Paths inside work/ are gone once the input moves: name the study's own files instead.
        let reason = rawReason.replacingOccurrences(of: rec.workPath + "/", with: "")
            .replacingOccurrences(of: rec.workPath, with: "'\(rec.name)'")
        let names = Self.namesInside(rec.workPath)
        var dest = config.failedPath + "/" + rec.outputName
        if fm.fileExists(atPath: dest) && !isOwnFailedFolder(dest, rec) { dest = config.failedPath + "/\(rec.outputName)-\(rec.id)" }
        var text = """
            Study: \(rec.name)
            Journal number: \(rec.id)
            Failed: \(ISO8601DateFormatter().string(from: Date()))
            Attempts: \(rec.attempts)
            Reason: \(reason)

            The input is kept beside this file. To try again, fix the input and move it back into the inbox.

            """
        // reason.txt first: a crash after the move leaves the reason beside the input, and the
        // next start only records it (failedEarlier).
        try journal.fenced(rec.id) {
            do {
                try fm.createDirectory(atPath: dest, withIntermediateDirectories: true)
                try? AtomicFile.write(text, to: dest + "/reason.txt")
                FaultInjection.point("fail.reasoned")
                if fm.fileExists(atPath: rec.workPath) { try moveItem(rec.workPath, dest + "/" + rec.name) }
                FaultInjection.point("fail.moved")
                try? fm.removeItem(atPath: (rec.workPath as NSString).deletingLastPathComponent)
            } catch {
                text += "(The input could not be moved here and is still at \(rec.workPath): \(error))\n"
                try? AtomicFile.write(text, to: dest + "/reason.txt")
            }
        }
        try journal.markFailed(rec.id, reason: reason)
        FaultInjection.point("fail.recorded")
        log.warning("study #\(rec.id) failed: \(redact(reason, rec, names: names))")
    }

    /// The reason of a failure that was written to failed/ (with the input moved beside it)
    /// before the daemon stopped, if there is one for this study.
    func failedEarlier(_ rec: StudyRecord) -> String? {
        for dir in [config.failedPath + "/" + rec.outputName, config.failedPath + "/\(rec.outputName)-\(rec.id)"] {
            guard isOwnFailedFolder(dir, rec), EntryType.of(dir + "/" + rec.name) != nil,
                  let text = try? String(contentsOfFile: dir + "/reason.txt", encoding: .utf8),
                  let start = text.range(of: "\nReason: ")?.upperBound
            else { continue }
            let end = text.range(of: "\n\nThe input is kept", range: start..<text.endIndex)?.lowerBound ?? text.endIndex
            return String(text[start..<end])
        }
        return nil
    }

    /// Whether `dir` in failed/ was made for this study (its reason.txt names the journal number).
    func isOwnFailedFolder(_ dir: String, _ rec: StudyRecord) -> Bool {
        (try? String(contentsOfFile: dir + "/reason.txt", encoding: .utf8))?.contains("\nJournal number: \(rec.id)\n") == true
    }

    /// Log text with the study's name (possibly an identifier) replaced by its number, and the
    /// names of the files inside it (identifiers too, as often as not) by `<file>`.
    func redact(_ text: String, _ rec: StudyRecord, names: [String]? = nil) -> String {
        var t = Self.hidingNames(text.replacingOccurrences(of: rec.workPath, with: "<study #\(rec.id)>"),
                                 names ?? Self.namesInside(rec.workPath))
        for s in [rec.name, rec.outputName] where s.count >= 3 { t = t.replacingOccurrences(of: s, with: "<study #\(rec.id)>") }
        return t
    }

    /// Names that a log line must not show: every relative path and file name inside a study
    /// folder (longest first), except the names the formats fix (Info.cfg).
    static func namesInside(_ path: String) -> [String] {
        var names = Set<String>()
        for e in FileTree.walk(path) {
            names.insert(e.path)
            names.insert((e.path as NSString).lastPathComponent)
        }
        return names.filter { $0.count >= 3 && $0 != "Info.cfg" }.sorted { $0.count > $1.count }
    }

    /// `text` with each of `names` (from `namesInside`) replaced by `<file>`.
    static func hidingNames(_ text: String, _ names: [String]) -> String {
        names.reduce(text) { $0.replacingOccurrences(of: $1, with: "<file>") }
    }

    func provenance(_ rec: StudyRecord, input: StudyInput, products p: StudyProducts, model: ServingModel) -> Provenance {
        let meta = model.segmenter.metadata
        let identity = model.segmenter.encoder.identity
        let parts = identity.split(separator: " ")
        let sha = parts.count == 2 && parts[1].count == 64 ? String(parts[1]) : nil
        var outputs = p.labels.map(\.name) + p.segs.map(\.name) + ["stats.json", "provenance.json"]
        if p.qc != nil { outputs.append("qc.png") }
        outputs += p.strips.map(\.name) + (p.stripIndex != nil ? ["slices.json"] : [])
        return Provenance(
            journalId: rec.id, study: rec.outputName, kind: input.kind.rawValue, attempt: rec.attemptNumber,
            software: "autosam \(BuildInfo.version)",
            encoder: .init(name: model.segmenter.encoder.config.name, identity: identity, sha256: sha,
                           precision: model.segmenter.encoder.precision.effective.rawValue,
                           precisionRequested: model.segmenter.encoder.precision.requested.rawValue,
                           precisionNote: model.segmenter.encoder.precision.note, cpu: CPUCapabilities.features),
            head: .init(version: model.version, kind: meta.kind.rawValue, trainedOn: meta.trainingPatients, validationDice: meta.validationDice),
            plan: meta.plan,
            frames: .init(count: input.frameCount, segmented: p.segmentedFrames, ed: p.edFrame, es: p.esFrame,
                          edESFrom: input.frameCount <= 1 ? "single frame" : (input.edES != nil ? "Info.cfg" : "LV volume curve (ED largest, ES smallest)"),
                          numbering: "1-based"),
            timings: p.timings, inputFiles: input.files.count, processedAt: ISO8601DateFormatter().string(from: Date()),
            outputs: outputs.sorted(), qcError: p.qcError, fieldCentersMM: p.fieldCentersMM.isEmpty ? nil : p.fieldCentersMM,
            uncertainty: p.review?.uncertainty, review: p.review?.review)
    }
}

/// A fingerprint of an inbox entry: every file's relative path, size and modification time.
struct Fingerprint {
    var digest: String
    var isDirectory: Bool

    static func of(_ path: String) -> Fingerprint? {
        guard let (type, st) = EntryType.status(path) else { return nil }
        let isDir = type == .folder
        var parts: [String] = []
        func add(_ rel: String, _ s: stat) {
            parts.append("\(rel)|\(s.st_size)|\(s.st_mtim.tv_sec).\(s.st_mtim.tv_nsec)")
        }
        add("", st)
        if isDir {
            for e in FileTree.walk(path) { add(e.path, e.stat) }
        }
        return Fingerprint(digest: parts.sorted().joined(separator: "\n"), isDirectory: isDir)
    }
}

/// One daemon per data folder: an exclusive `flock` on a file beside the SQLite journal, held
/// while the daemon runs and released by the kernel whatever way the process ends.
final class DataFolderLock {
    private var fd: Int32

    init(journal: String) throws {
        let path = journal + ".lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError("cannot open the lock file \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            close(fd)
            fd = -1
            guard err == EWOULDBLOCK else { throw ConfigError("cannot lock \(path): \(String(cString: strerror(err)))") }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            throw ConfigError("another autosam daemon already serves this data folder\(holder.isEmpty ? "" : " (\(holder))"): its journal \(journal) is locked. One daemon per data folder; stop the other one first.")
        }
        let text = "pid \(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
