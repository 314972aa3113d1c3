import Foundation

/// What the daemon, the PACS sender, the refit loop, `autosam status` and the review page need
/// from the service's durable record. Two backends: `Journal` (SQLite, one daemon per data
/// folder, the embedded default) and `PostgresJournal` (`[queue] backend = "postgres"`: several
/// workers, on one host or many, share one queue; docs/DEPLOYMENT.md).
///
/// With a shared backend every study a worker works on is held under a lease with a fencing
/// token, taken by `nextRunnable`: the worker's writes about that study (`markProcessing`,
/// `markDone`, ..., and whatever runs inside `fenced`) succeed only while the token is still
/// the study's current one, and throw `LeaseLost` otherwise. The SQLite journal has one
/// worker, so its leases never lapse.
public protocol StudyJournal: AnyObject, Sendable {
    /// Whether several workers share this journal (PostgreSQL).
    var shared: Bool { get }

    // studies
    /// Records a claim of an inbox entry; nil when another worker is claiming the same entry.
    func claimEntry(name: String, kind: String, workFolder: String, taken: (String) -> Bool) throws -> StudyRecord?
    /// The claimed entry is now in the work folder (a shared journal frees it for any worker).
    func claimMoved(_ id: Int64) throws
    func abandonClaim(_ id: Int64) throws
    func study(_ id: Int64) throws -> StudyRecord?
    func studies(state: StudyState?) throws -> [StudyRecord]
    func nextRunnable(now: Double, latest: Double) throws -> StudyRecord?
    func waitingCount(now: Double, latest: Double) throws -> Int
    func markProcessing(_ id: Int64, kind: String) throws
    func markDone(_ id: Int64, modelVersion: String, seconds: Double, sends: [(destination: String, path: String)]) throws
    func markFailed(_ id: Int64, reason: String) throws
    func markRetry(_ id: Int64, reason: String, delay: Double) throws
    func requeue(_ id: Int64, reason: String) throws
    /// Studies this worker left in `processing` go back to the queue (a shared journal touches
    /// only the rows this worker holds).
    func requeueProcessing(counts: (StudyRecord) -> Bool, why: (Int) -> String) throws -> [StudyRecord]
    func counts() throws -> [StudyState: Int]
    func recentDone(limit: Int) throws -> [StudyRecord]
    func recentFailed(limit: Int) throws -> [StudyRecord]
    func doneEvents(_ id: Int64) throws -> Int
    /// Runs `body` (a file move that publishes or sets aside a study) only while this worker
    /// still holds the study's lease, and so that no other worker can take the study meanwhile.
    func fenced<T>(_ id: Int64, _ body: () throws -> T) throws -> T
    /// Runs `body` while no other worker runs a body under the same name (the cohort table).
    func exclusive<T>(_ name: String, _ body: () throws -> T) throws -> T

    // labels and refits
    func recordLabel(name: String, accepted: Bool, volumes: Int, reason: String?) throws -> Int64
    func pendingLabelledVolumes() throws -> Int
    func labels() throws -> [LabelRecord]
    /// Starts a refit; nil when one is already running (on another worker).
    func beginRefit(volumes: Int) throws -> Int64?
    func finishRefit(_ id: Int64, outcome: String, candidate: String?, detail: String, consumed: Bool) throws
    func closeInterruptedRefits() throws
    func lastRefit() throws -> RefitRecord?
    func refits() throws -> [RefitRecord]
    func lastRefitFinished() throws -> Double?

    // sends to PACS destinations
    func dueSends(now: Double, latest: Double, limit: Int) throws -> [SendRecord]
    func markSent(_ id: Int64) throws
    func markSendFailed(_ id: Int64, error: String, delay: Double) throws
    func sends(study: Int64?) throws -> [SendRecord]
    func sendSummary() throws -> [SendSummary]

    // the review page's actions
    func recordAction(user: String, action: String, detail: String) throws
    func actions(limit: Int) throws -> [(at: Double, action: String, detail: String)]

    // workers
    /// This worker is alive (and works on `study`, done `done` so far, serves `head`); renews
    /// the leases it holds. Returns the studies whose lease it found taken by another worker.
    func heartbeat(study: Int64?, done: Int, head: String?) throws -> [Int64]
    /// This worker stops: its row says so and its leases are given up.
    func workerStopped() throws
    func workers() throws -> [WorkerRecord]
}

/// A study's lease went to another worker (this one was too slow to renew it, or the
/// database was unreachable for longer than the lease): this worker's attempt must leave no trace.
public struct LeaseLost: Error, CustomStringConvertible {
    public var study: Int64
    public var description: String { "study #\(study) is no longer this worker's: another worker took it over when its lease ran out" }
}

/// One worker process sharing the queue, as `autosam status` shows it.
public struct WorkerRecord: Sendable, Codable, Equatable {
    public var name: String
    public var host: String
    public var pid: Int
    public var startedAt: Double
    public var heartbeatAt: Double
    public var study: Int64?
    public var done: Int
    /// The head version it serves (nil before its first study or refresh).
    public var head: String?
    public var stopped: Bool
    /// Seconds since the heartbeat, on the database's clock.
    public var silentFor: Double

    /// "stopped", "alive", or "SILENT for N s" once the heartbeat is older than the lease.
    public func condition(lease: Double) -> String {
        stopped ? "stopped" : (silentFor > lease ? String(format: "SILENT for %.0f s", silentFor) : "alive")
    }
}

public extension StudyJournal {
    func studies() throws -> [StudyRecord] { try studies(state: nil) }
    func heartbeat(study: Int64?, done: Int) throws -> [Int64] { try heartbeat(study: study, done: done, head: nil) }
    func nextRunnable() throws -> StudyRecord? { try nextRunnable(now: Journal.now(), latest: .greatestFiniteMagnitude) }
    func waitingCount() throws -> Int { try waitingCount(now: Journal.now(), latest: .greatestFiniteMagnitude) }
    func markDone(_ id: Int64, modelVersion: String, seconds: Double) throws {
        try markDone(id, modelVersion: modelVersion, seconds: seconds, sends: [])
    }
    func dueSends(now: Double, latest: Double) throws -> [SendRecord] { try dueSends(now: now, latest: latest, limit: 100) }
    func dueSends() throws -> [SendRecord] { try dueSends(now: Journal.now(), latest: .greatestFiniteMagnitude, limit: 100) }
    func sends() throws -> [SendRecord] { try sends(study: nil) }
    func actions() throws -> [(at: Double, action: String, detail: String)] { try actions(limit: 50) }
}

/// The journal the configuration names: SQLite in the data folder, or the shared PostgreSQL
/// queue. `readOnly` (SQLite) is for readers beside a running daemon.
public func openJournal(_ config: ServiceConfig, readOnly: Bool = false) throws -> any StudyJournal {
    if config.usesPostgres { return try PostgresJournal(config: config, worker: readOnly ? "reader" : nil, migrate: !readOnly) }
    return try Journal(path: config.journalPath, readOnly: readOnly)
}
