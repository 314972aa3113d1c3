import Foundation

/// What `autosam status` shows, read from the journal (read-only, alongside the running daemon).
public struct ServiceStatus: Codable, Sendable {
    public struct Timing: Codable, Sendable {
        public var id: Int64
        public var kind: String
        public var seconds: Double
        public var modelVersion: String
        public var finishedAt: String
    }
    public struct Failure: Codable, Sendable {
        public var id: Int64
        public var reason: String
        public var finishedAt: String
    }
    public struct Refit: Codable, Sendable {
        public var id: Int64
        public var startedAt: String
        public var finishedAt: String?
        public var volumes: Int
        public var outcome: String
        public var candidateVersion: String?
        public var detail: String?
    }

    /// Entries in the inbox not yet claimed (still arriving or quiet-period pending).
    public var inboxWaiting: Int
    /// Claimed and waiting (including retries).
    public var queued: Int
    public var retrying: Int
    public var processing: Int
    public var done: Int
    public var failed: Int
    public var recent: [Timing]
    public var meanSeconds: Double?
    public var recentFailures: [Failure]
    public var currentModel: String
    public var labelledPending: Int
    public var labelledTotal: Int
    public var lastRefit: Refit?
    /// Per PACS destination: results sent and waiting, with the latest error of the waiting.
    public var pacs: [SendSummary] = []
    /// A shared queue: every worker, and the cluster's studies per hour over the last hour.
    public var workers: [WorkerRecord] = []
    public var studiesPerHour: Double?
    public var leaseSeconds: Double?

    static func time(_ t: Double?) -> String? {
        t.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) }
    }

    public static func read(config: ServiceConfig) throws -> ServiceStatus {
        let j = try openJournal(config, readOnly: true)
        let c = try j.counts()
        let recent = try j.recentDone(limit: 10)
        let inbox = ((try? FileManager.default.contentsOfDirectory(atPath: config.inboxPath)) ?? []).filter { !$0.hasPrefix(".") && !$0.hasSuffix(config.marker) }
        let labels = try j.labels()
        let last = try j.lastRefit()
        return ServiceStatus(
            inboxWaiting: inbox.count, queued: (c[.claimed] ?? 0) + (c[.retry] ?? 0), retrying: c[.retry] ?? 0,
            processing: c[.processing] ?? 0, done: c[.done] ?? 0, failed: c[.failed] ?? 0,
            recent: recent.map { Timing(id: $0.id, kind: $0.kind, seconds: $0.seconds ?? 0, modelVersion: $0.modelVersion ?? "?", finishedAt: time($0.finishedAt) ?? "") },
            meanSeconds: recent.isEmpty ? nil : recent.compactMap(\.seconds).reduce(0, +) / Double(recent.count),
            recentFailures: try j.recentFailed(limit: 5).map { Failure(id: $0.id, reason: $0.reason ?? "", finishedAt: time($0.finishedAt) ?? "") },
            currentModel: ModelProvider.describeCurrent(config: config),
            labelledPending: try j.pendingLabelledVolumes(),
            labelledTotal: labels.filter { $0.state == "accepted" }.map(\.volumes).reduce(0, +),
            lastRefit: last.map { Refit(id: $0.id, startedAt: time($0.startedAt) ?? "", finishedAt: time($0.finishedAt), volumes: $0.volumes,
                                        outcome: $0.outcome ?? "running", candidateVersion: $0.candidateVersion, detail: $0.detail) },
            pacs: try j.sendSummary(), workers: try j.workers(),
            studiesPerHour: try (j as? PostgresJournal)?.throughput(), leaseSeconds: config.usesPostgres ? config.queueLease : nil)
    }

    public func jsonData() throws -> Data { try sortedJSONData(self) }

    /// The head serving now (as `currentModel` says it), without reading the rest.
    public static func servingHead(config: ServiceConfig) -> String { ModelProvider.describeCurrent(config: config) }

    public var text: String {
        var lines: [String] = []
        lines.append("inbox: \(inboxWaiting) arriving; queue: \(queued) waiting (\(retrying) retrying), \(processing) processing")
        lines.append("studies: \(done) done, \(failed) failed")
        lines.append("model: \(currentModel)")
        if let m = meanSeconds { lines.append(String(format: "recent: mean %.1f s over the last %d studies", m, recent.count)) }
        for t in recent { lines.append(String(format: "  #%lld  %-12@ %7.1f s  head %@  %@", t.id, t.kind, t.seconds, t.modelVersion, t.finishedAt)) }
        if !recentFailures.isEmpty {
            lines.append("recent failures:")
            for f in recentFailures { lines.append("  #\(f.id)  \(f.finishedAt)  \(f.reason.split(separator: "\n").first ?? "")") }
        }
        lines.append("labelled volumes: \(labelledTotal) accepted, \(labelledPending) not yet used by a refit")
        if let r = lastRefit {
            lines.append("last refit: #\(r.id) \(r.outcome) (\(r.volumes) volumes, started \(r.startedAt))" + (r.candidateVersion.map { ", candidate \($0)" } ?? ""))
            if let d = r.detail { lines.append("  \(d)") }
        } else {
            lines.append("last refit: none")
        }
        if let rate = studiesPerHour {
            lines.append(String(format: "cluster: %.0f studies in the last hour; %d worker(s)", rate, workers.count))
        }
        for w in workers {
            let state = w.condition(lease: leaseSeconds ?? 30)
            lines.append("  worker \(w.name) (host \(w.host), pid \(w.pid)): \(state), heartbeat \(Self.time(w.heartbeatAt) ?? "?"), "
                         + "\(w.done) done" + (w.head.map { ", head \($0)" } ?? "") + (w.study.map { ", on study #\($0)" } ?? ""))
        }
        for d in pacs {
            var line = "pacs \(d.destination): \(d.sent) sent, \(d.pending) waiting"
            if d.pending > 0, let e = d.lastError {
                line += " - FAILING after \(d.maxAttempts) tries: \(e.split(separator: "\n").first ?? "")"
                if let t = Self.time(d.nextAttemptAt) { line += "; next try \(t)" }
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}

extension ServiceConfig {
    /// The settings in effect, one `section.key = value` per line (for `autosam watch --check`).
    public var summary: String {
        let lines = [
            "paths.data = \(data)", "inbox = \(inboxPath)", "outbox = \(outboxPath)", "archive = \(archivePath)",
            "failed = \(failedPath)", "labels = \(labelsPath)", "models = \(modelsPath)", "work = \(workPath)",
            "cache = \(cachePath)", "training = \(trainingPath)", "journal = \(journalPath)",
            "model.encoder = \(encoder)", "model.head = \(head.isEmpty ? "(store, else embedded default)" : head)", "model.precision = \(precision)",
            "inbox.quiet_period_s = \(quietPeriod)", "inbox.marker = \(marker)", "inbox.poll_interval_s = \(pollInterval)",
            "inbox.delete_inputs = \(deleteInputs)", "inbox.max_attempts = \(maxAttempts)",
            "inbox.retry_backoff_s = \(retryBackoff)", "inbox.retry_backoff_max_s = \(retryBackoffMax)",
            "segmentation.frames = \(frames.rawValue)",
            "series_rules.min_phases = \(seriesRules.minPhases)", "series_rules.min_slices = \(seriesRules.minSlices)",
            "refit.enabled = \(refitEnabled)", "refit.every_n_volumes = \(refitEveryVolumes)", "refit.interval_hours = \(refitIntervalHours)",
            "refit.tolerance = \(refitTolerance)", "refit.epochs = \(refitEpochs)", "refit.epoch_samples = \(refitEpochSamples)", "refit.validation_volumes = \(refitValidationVolumes)",
            "log.level = \(logLevel.rawValue)", "service.stall_limit_s = \(stallLimit)",
            "queue.backend = \(queueBackend)", "queue.host = \(queueHost)", "queue.port = \(queuePort)",
            "queue.database = \(queueDatabase)", "queue.user = \(queueUser)",
            "queue.password = \(queuePassword.isEmpty ? "(not set)" : "(set, not shown)")", "queue.password_file = \(queuePasswordFile)",
            "queue.lease_s = \(queueLease)", "queue.worker = \(queueWorker.isEmpty ? "(host name and process id)" : queueWorker)",
            "queue.tls = \(queueTLS)", "queue.statement_timeout_s = \(queueStatementTimeout)",
            "web.listen = \(webListen)", "web.users_file = \(webUsersPath)", "web.session_minutes = \(webSessionMinutes)",
            "pacs.destinations = \(pacsDestinations.map(\.description))", "pacs.calling_ae = \(pacsCallingAE)",
            "pacs.timeout_s = \(pacsTimeout)", "pacs.tls_trusted_certificates = \(pacsTLSTrusted)",
            "pacs.tls_certificate = \(pacsTLSCertificate)", "pacs.tls_private_key = \(pacsTLSPrivateKey)", "pacs.retry_backoff_s = \(pacsRetryBackoff)", "pacs.retry_backoff_max_s = \(pacsRetryBackoffMax)",
        ]
        return lines.joined(separator: "\n")
    }
}
