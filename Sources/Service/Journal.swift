import Foundation
import GRDB

/// The states a study passes through. `claimed` means queued (moved into the work folder);
/// `retry` waits for `nextAttemptAt` after an output-write failure; `done` and `failed` are final.
public enum StudyState: String, Sendable, Codable, CaseIterable {
    case claimed, processing, retry, done, failed
}

/// One journal row.
public struct StudyRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: String
    public var kind: String
    public var state: StudyState
    public var attempts: Int
    public var writeFailures: Int
    public var claimedAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var nextAttemptAt: Double?
    public var workPath: String
    public var outputName: String
    public var modelVersion: String?
    public var reason: String?
    public var seconds: Double?

    /// The number of the attempt that starts next: every start so far, whether it was cut off by
    /// a stop or a crash (`attempts`) or ended in a write failure retried later (`writeFailures`).
    public var attemptNumber: Int { attempts + writeFailures + 1 }
}

/// One refit attempt.
public struct RefitRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var startedAt: Double
    public var finishedAt: Double?
    public var volumes: Int
    public var outcome: String?
    public var candidateVersion: String?
    public var detail: String?
}

/// One labelled volume received through the labels folder.
public struct LabelRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var name: String
    public var state: String  // accepted | rejected
    public var receivedAt: Double
    public var volumes: Int
    public var reason: String?
    public var refitId: Int64?
}

/// The service's durable record (SQLite through GRDB, WAL mode): every state change of a study
/// is one transaction, so a crash leaves each study in a state the next start can resume from.
/// One result file queued for one PACS destination.
public struct SendRecord: Sendable, Codable, Equatable {
    public var id: Int64
    public var studyId: Int64
    public var destination: String
    public var path: String
    /// "pending" or "sent".
    public var state: String
    public var attempts: Int
    public var nextAttemptAt: Double
    public var sentAt: Double?
    public var lastError: String?
}

/// One destination's sends, as `autosam status` shows them.
public struct SendSummary: Sendable, Codable, Equatable {
    public var destination: String
    public var sent: Int
    public var pending: Int
    public var maxAttempts: Int
    public var lastError: String?
    public var nextAttemptAt: Double?
}

public final class Journal: StudyJournal, @unchecked Sendable {
    public var shared: Bool { false }
    public let path: String
    let db: DatabaseQueue

    /// Opens (creating and migrating) the journal. `readOnly` is for `autosam status`, which
    /// reads while the daemon writes.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.readonly = readOnly
        if !readOnly { config.journalMode = .wal }
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else {
                throw ConfigError("no journal at \(path): the daemon has not run with this configuration yet")
            }
        } else {
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        }
        db = try DatabaseQueue(path: path, configuration: config)
        if !readOnly {
            try migrate()
        } else if try db.read({ try !$0.tableExists("studies") }) {
            throw ConfigError("the journal at \(path) is still being created by the daemon; try again in a moment")
        }
    }

    func migrate() throws {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE studies (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  name TEXT NOT NULL,
                  kind TEXT NOT NULL DEFAULT '',
                  state TEXT NOT NULL,
                  attempts INTEGER NOT NULL DEFAULT 0,
                  write_failures INTEGER NOT NULL DEFAULT 0,
                  claimed_at REAL NOT NULL,
                  started_at REAL,
                  finished_at REAL,
                  next_attempt_at REAL,
                  work_path TEXT NOT NULL,
                  output_name TEXT NOT NULL,
                  model_version TEXT,
                  reason TEXT,
                  seconds REAL
                );
                CREATE INDEX studies_state ON studies(state);
                CREATE TABLE events (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  study_id INTEGER,
                  at REAL NOT NULL,
                  state TEXT NOT NULL,
                  detail TEXT
                );
                CREATE TABLE refits (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  started_at REAL NOT NULL,
                  finished_at REAL,
                  volumes INTEGER NOT NULL,
                  outcome TEXT,
                  candidate_version TEXT,
                  detail TEXT
                );
                CREATE TABLE labels (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  name TEXT NOT NULL,
                  state TEXT NOT NULL,
                  received_at REAL NOT NULL,
                  volumes INTEGER NOT NULL DEFAULT 0,
                  reason TEXT,
                  refit_id INTEGER
                );
                """)
        }
        m.registerMigration("v2-sends") { db in
            // One row per result file and PACS destination, written with the study's `done`.
            try db.execute(sql: """
                CREATE TABLE sends (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  study_id INTEGER NOT NULL,
                  destination TEXT NOT NULL,
                  path TEXT NOT NULL,
                  state TEXT NOT NULL,
                  attempts INTEGER NOT NULL DEFAULT 0,
                  created_at REAL NOT NULL,
                  next_attempt_at REAL NOT NULL,
                  sent_at REAL,
                  last_error TEXT,
                  UNIQUE (study_id, destination, path)
                );
                CREATE INDEX sends_due ON sends(state, next_attempt_at);
                """)
        }
        try m.migrate(db)
    }

    // MARK: sends to PACS destinations

    /// Sends due at `now` (or, the clock having gone back, before `latest`), oldest first.
    public func dueSends(now: Double, latest: Double, limit: Int) throws -> [SendRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM sends WHERE state = 'pending' AND (next_attempt_at <= ? OR next_attempt_at > ?)
                ORDER BY next_attempt_at, id LIMIT ?
                """, arguments: [now, latest, limit]).map(Self.send)
        }
    }

    public func markSent(_ id: Int64) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE sends SET state = 'sent', attempts = attempts + 1, sent_at = ?, last_error = NULL WHERE id = ?",
                           arguments: [Self.now(), id])
        }
    }

    /// A failed try: pending again after `delay` seconds, with its reason.
    public func markSendFailed(_ id: Int64, error: String, delay: Double) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE sends SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                           arguments: [error, Self.now() + delay, id])
        }
    }

    public func sends(study: Int64?) throws -> [SendRecord] {
        try db.read { db in
            if let study { return try Row.fetchAll(db, sql: "SELECT * FROM sends WHERE study_id = ? ORDER BY id", arguments: [study]).map(Self.send) }
            return try Row.fetchAll(db, sql: "SELECT * FROM sends ORDER BY id").map(Self.send)
        }
    }

    /// Per destination: files sent, files waiting, and the waiting ones' latest error and
    /// most tries (what `autosam status` shows).
    public func sendSummary() throws -> [SendSummary] {
        try db.read { db in
            guard try db.tableExists("sends") else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT destination,
                       SUM(state = 'sent') AS sent, SUM(state = 'pending') AS pending,
                       MAX(CASE WHEN state = 'pending' THEN attempts END) AS tries,
                       (SELECT last_error FROM sends s2 WHERE s2.destination = sends.destination AND s2.state = 'pending'
                          AND s2.last_error IS NOT NULL ORDER BY s2.next_attempt_at DESC LIMIT 1) AS last_error,
                       MIN(CASE WHEN state = 'pending' THEN next_attempt_at END) AS next_attempt_at
                FROM sends GROUP BY destination ORDER BY destination
                """).map { r in
                SendSummary(destination: r["destination"], sent: r["sent"] ?? 0, pending: r["pending"] ?? 0,
                            maxAttempts: r["tries"] ?? 0, lastError: r["last_error"], nextAttemptAt: r["next_attempt_at"])
            }
        }
    }

    static func send(_ r: Row) -> SendRecord {
        SendRecord(id: r["id"], studyId: r["study_id"], destination: r["destination"], path: r["path"], state: r["state"],
                   attempts: r["attempts"], nextAttemptAt: r["next_attempt_at"], sentAt: r["sent_at"], lastError: r["last_error"])
    }

    public static func now() -> Double { Date().timeIntervalSince1970 }

    /// What a person did through the review page (promote, roll back), with who: an event with
    /// no study, its state `web:<action>`.
    public func recordAction(user: String, action: String, detail: String) throws {
        try db.write { db in
            try db.execute(sql: "INSERT INTO events (study_id, at, state, detail) VALUES (NULL, ?, ?, ?)",
                           arguments: [Self.now(), "web:" + action, "\(user): \(detail)"])
        }
    }

    /// The review page's recorded actions, newest first: (time, action, "user: detail").
    public func actions(limit: Int) throws -> [(at: Double, action: String, detail: String)] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT at, state, detail FROM events WHERE state LIKE 'web:%' ORDER BY id DESC LIMIT ?", arguments: [limit])
                .map { (at: $0["at"], action: String(($0["state"] as String).dropFirst(4)), detail: $0["detail"] ?? "") }
        }
    }

    static func study(_ r: Row) -> StudyRecord {
        StudyRecord(
            id: r["id"], name: r["name"], kind: r["kind"], state: StudyState(rawValue: r["state"]) ?? .failed,
            attempts: r["attempts"], writeFailures: r["write_failures"], claimedAt: r["claimed_at"], startedAt: r["started_at"],
            finishedAt: r["finished_at"], nextAttemptAt: r["next_attempt_at"], workPath: r["work_path"],
            outputName: r["output_name"], modelVersion: r["model_version"], reason: r["reason"], seconds: r["seconds"])
    }

    private func event(_ db: Database, _ id: Int64, _ state: StudyState, _ detail: String? = nil) throws {
        try db.execute(sql: "INSERT INTO events (study_id, at, state, detail) VALUES (?, ?, ?, ?)",
                       arguments: [id, Self.now(), state.rawValue, detail])
    }

    // MARK: studies

    /// Records a claim: a new queued study whose input will live at `workPath`. Returns its id.
    /// `outputName` is made unique among journal rows (a name seen before gets `-<id>`).
    /// `taken` says whether an output name is already used outside the journal (a folder in
    /// the outbox or in failed/).
    public func claim(name: String, kind: String, workFolder: String, taken isTaken: (String) -> Bool = { _ in false }) throws -> StudyRecord {
        try db.write { db in
            try db.execute(sql: "INSERT INTO studies (name, kind, state, claimed_at, work_path, output_name) VALUES (?, ?, 'claimed', ?, '', '')",
                           arguments: [name, kind, Self.now()])
            let id = db.lastInsertedRowID
            let stem = Self.stem(name)
            let taken = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM studies WHERE output_name = ?", arguments: [stem]) ?? 0
            let output = taken > 0 || isTaken(stem) ? "\(stem)-\(id)" : stem
            let work = "\(workFolder)/\(id)/\(name)"
            try db.execute(sql: "UPDATE studies SET work_path = ?, output_name = ? WHERE id = ?", arguments: [work, output, id])
            try event(db, id, .claimed)
            return Self.study(try Row.fetchOne(db, sql: "SELECT * FROM studies WHERE id = ?", arguments: [id])!)
        }
    }

    public func claimEntry(name: String, kind: String, workFolder: String, taken: (String) -> Bool) throws -> StudyRecord? {
        try claim(name: name, kind: kind, workFolder: workFolder, taken: taken)
    }

    /// One daemon per data folder: the entry is its own from the claim on.
    public func claimMoved(_ id: Int64) throws {}

    /// One worker: nothing can take a study from it.
    public func fenced<T>(_ id: Int64, _ body: () throws -> T) throws -> T { try body() }
    public func exclusive<T>(_ name: String, _ body: () throws -> T) throws -> T { try body() }
    public func heartbeat(study: Int64?, done: Int, head: String?) throws -> [Int64] { [] }
    public func workerStopped() throws {}
    public func workers() throws -> [WorkerRecord] { [] }

    /// A study's output folder name: its input name without NIfTI extensions.
    static func stem(_ name: String) -> String {
        for ext in [".nii.gz", ".nii"] where name.hasSuffix(ext) && name.count > ext.count { return String(name.dropLast(ext.count)) }
        return name
    }

    public func study(_ id: Int64) throws -> StudyRecord? {
        try db.read { db in try Row.fetchOne(db, sql: "SELECT * FROM studies WHERE id = ?", arguments: [id]).map(Self.study) }
    }

    public func studies(state: StudyState?) throws -> [StudyRecord] {
        try db.read { db in
            if let state {
                return try Row.fetchAll(db, sql: "SELECT * FROM studies WHERE state = ? ORDER BY id", arguments: [state.rawValue]).map(Self.study)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM studies ORDER BY id").map(Self.study)
        }
    }

    /// The next study to work on: a queued one, or a retry whose time has come; oldest first.
    /// A retry time later than `latest` cannot have come from a back-off taken since the clock
    /// was last right (the clock was set back): it counts as due.
    public func nextRunnable(now: Double, latest: Double) throws -> StudyRecord? {
        try db.read { db in
            try Row.fetchOne(db, sql: """
                SELECT * FROM studies WHERE state = 'claimed' OR (state = 'retry' AND (next_attempt_at <= ? OR next_attempt_at > ?))
                ORDER BY (state = 'retry'), id LIMIT 1
                """, arguments: [now, latest]).map(Self.study)
        }
    }

    /// Studies waiting now (queued, or retries already due).
    public func waitingCount(now: Double, latest: Double) throws -> Int {
        try db.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM studies WHERE state = 'claimed' OR (state = 'retry' AND (next_attempt_at <= ? OR next_attempt_at > ?))",
                             arguments: [now, latest]) ?? 0
        }
    }

    public func markProcessing(_ id: Int64, kind: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE studies SET state = 'processing', kind = ?, attempts = attempts + 1, started_at = ? WHERE id = ?",
                           arguments: [kind, Self.now(), id])
            try event(db, id, .processing)
        }
    }

    /// The study is done; `sends` (destination, file) are queued in the same transaction, so
    /// a done study's results are never left unsent by a crash (a repeated pair is kept once).
    public func markDone(_ id: Int64, modelVersion: String, seconds: Double, sends: [(destination: String, path: String)]) throws {
        try db.write { db in
            let now = Self.now()
            try db.execute(sql: "UPDATE studies SET state = 'done', finished_at = ?, model_version = ?, seconds = ?, reason = NULL, next_attempt_at = NULL WHERE id = ?",
                           arguments: [now, modelVersion, seconds, id])
            for s in sends {
                try db.execute(sql: "INSERT OR IGNORE INTO sends (study_id, destination, path, state, created_at, next_attempt_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                               arguments: [id, s.destination, s.path, now, now])
            }
            try event(db, id, .done)
        }
    }

    /// Undoes a claim whose input never left the inbox (it could not be moved into work/): the
    /// row and its events go, so that the entry is claimed afresh, under the same output name,
    /// when it is tried again.
    public func abandonClaim(_ id: Int64) throws {
        try db.write { db in
            try db.execute(sql: "DELETE FROM events WHERE study_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM studies WHERE id = ? AND state = 'claimed'", arguments: [id])
        }
    }

    public func markFailed(_ id: Int64, reason: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE studies SET state = 'failed', finished_at = ?, reason = ? WHERE id = ?",
                           arguments: [Self.now(), reason, id])
            try event(db, id, .failed, reason)
        }
    }

    /// An output could not be written: the study waits `delay` seconds and is tried again.
    public func markRetry(_ id: Int64, reason: String, delay: Double) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE studies SET state = 'retry', write_failures = write_failures + 1, next_attempt_at = ?, reason = ?, attempts = MAX(0, attempts - 1) WHERE id = ?",
                           arguments: [Self.now() + delay, reason, id])
            try event(db, id, .retry, reason)
        }
    }

    /// The daemon stopped mid-study on purpose: back to the queue, the attempt not counted.
    public func requeue(_ id: Int64, reason: String) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE studies SET state = 'claimed', attempts = MAX(0, attempts - 1) WHERE id = ?", arguments: [id])
            try event(db, id, .claimed, reason)
        }
    }

    /// Studies left in `processing` go back to the queue: after a crash (at start-up; the
    /// attempt stays counted, toward `inbox.max_attempts`), or after a journal write failed
    /// mid-study (in the same run; the attempt is not counted unless `counts` says it got as
    /// far as its outputs). `why` is the event's text for a study's attempt number.
    public func requeueProcessing(counts: (StudyRecord) -> Bool, why: (Int) -> String) throws -> [StudyRecord] {
        try db.write { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM studies WHERE state = 'processing' ORDER BY id").map(Self.study)
            for r in rows {
                try db.execute(sql: "UPDATE studies SET state = 'claimed', attempts = MAX(0, attempts - ?) WHERE id = ?",
                               arguments: [counts(r) ? 0 : 1, r.id])
                try event(db, r.id, .claimed, why(r.attempts))
            }
            return rows
        }
    }

    public func counts() throws -> [StudyState: Int] {
        try db.read { db in
            var out: [StudyState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM studies GROUP BY state") {
                if let s = StudyState(rawValue: row["state"]) { out[s] = row["n"] }
            }
            return out
        }
    }

    public func recentDone(limit: Int) throws -> [StudyRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM studies WHERE state = 'done' ORDER BY finished_at DESC LIMIT ?", arguments: [limit]).map(Self.study)
        }
    }

    public func recentFailed(limit: Int) throws -> [StudyRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM studies WHERE state = 'failed' ORDER BY finished_at DESC LIMIT ?", arguments: [limit]).map(Self.study)
        }
    }

    /// How many times each study reached `done` (an exactly-once check for tests and audits).
    public func doneEvents(_ id: Int64) throws -> Int {
        try db.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events WHERE study_id = ? AND state = 'done'", arguments: [id]) ?? 0 }
    }

    // MARK: labels and refits

    public func recordLabel(name: String, accepted: Bool, volumes: Int, reason: String?) throws -> Int64 {
        try db.write { db in
            try db.execute(sql: "INSERT INTO labels (name, state, received_at, volumes, reason) VALUES (?, ?, ?, ?, ?)",
                           arguments: [name, accepted ? "accepted" : "rejected", Self.now(), volumes, reason])
            return db.lastInsertedRowID
        }
    }

    /// Accepted labelled volumes not yet used by a finished refit.
    public func pendingLabelledVolumes() throws -> Int {
        try db.read { db in
            try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(volumes), 0) FROM labels WHERE state = 'accepted' AND refit_id IS NULL") ?? 0
        }
    }

    public func labels() throws -> [LabelRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM labels ORDER BY id").map { r in
                LabelRecord(id: r["id"], name: r["name"], state: r["state"], receivedAt: r["received_at"], volumes: r["volumes"],
                            reason: r["reason"], refitId: r["refit_id"])
            }
        }
    }

    public func startRefit(volumes: Int) throws -> Int64 {
        try db.write { db in
            try db.execute(sql: "INSERT INTO refits (started_at, volumes) VALUES (?, ?)", arguments: [Self.now(), volumes])
            return db.lastInsertedRowID
        }
    }

    public func beginRefit(volumes: Int) throws -> Int64? { try startRefit(volumes: volumes) }

    /// Ends a refit. `consumed`: the pending labels it used are marked (not for an abandoned one).
    public func finishRefit(_ id: Int64, outcome: String, candidate: String?, detail: String, consumed: Bool) throws {
        try db.write { db in
            try db.execute(sql: "UPDATE refits SET finished_at = ?, outcome = ?, candidate_version = ?, detail = ? WHERE id = ?",
                           arguments: [Self.now(), outcome, candidate, detail, id])
            if consumed {
                try db.execute(sql: "UPDATE labels SET refit_id = ? WHERE state = 'accepted' AND refit_id IS NULL", arguments: [id])
            }
        }
    }

    /// A refit that was running when the daemon died is closed as abandoned.
    public func closeInterruptedRefits() throws {
        try db.write { db in
            try db.execute(sql: "UPDATE refits SET finished_at = ?, outcome = 'abandoned', detail = 'the daemon stopped during the refit' WHERE finished_at IS NULL",
                           arguments: [Self.now()])
        }
    }

    public func lastRefit() throws -> RefitRecord? {
        try db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM refits ORDER BY id DESC LIMIT 1").map { r in
                RefitRecord(id: r["id"], startedAt: r["started_at"], finishedAt: r["finished_at"], volumes: r["volumes"],
                            outcome: r["outcome"], candidateVersion: r["candidate_version"], detail: r["detail"])
            }
        }
    }

    public func refits() throws -> [RefitRecord] {
        try db.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM refits ORDER BY id").map { r in
                RefitRecord(id: r["id"], startedAt: r["started_at"], finishedAt: r["finished_at"], volumes: r["volumes"],
                            outcome: r["outcome"], candidateVersion: r["candidate_version"], detail: r["detail"])
            }
        }
    }

    /// Time of the last finished refit (scheduling), nil if none.
    public func lastRefitFinished() throws -> Double? {
        try db.read { db in try Double.fetchOne(db, sql: "SELECT MAX(finished_at) FROM refits WHERE outcome != 'abandoned'") }
    }
}
