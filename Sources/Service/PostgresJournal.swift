import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// The database could not be reached or answered with an error that is not the study's:
/// the worker parks what it holds and tries again after a back-off.
public struct JournalUnavailable: Error, CustomStringConvertible {
    public var description: String
}

/// The shared queue in PostgreSQL (`[queue] backend = "postgres"`): the journal's tables, plus
/// leases. Several workers, on one host or many, claim inbox entries and studies here before
/// any file moves; a study is held by one worker under a lease (`lease_until`, on the
/// database's clock) with a fencing token (`token`, raised at every take), which the worker
/// renews from its heartbeat; every write about the study names the token, so a worker whose
/// lease lapsed and went to another changes nothing (`LeaseLost`).
///
/// One connection per worker process, used by one caller at a time (the loop, the heartbeat,
/// the PACS sender take turns); it is opened again after any failure. The calls block: the
/// daemon is a plain loop on its own thread, and NIO does the network work on its event loop,
/// never on Swift's cooperative threads.
public final class PostgresJournal: StudyJournal, @unchecked Sendable {
    public var shared: Bool { true }
    public let worker: String
    let configuration: PostgresConnection.Configuration
    let target: String
    let lease: Double
    let statementTimeout: Double
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private var nextConnectionID = 1
    /// The studies this worker holds: id -> fencing token.
    private var held: [Int64: Int64] = [:]
    private let heldLock = NSLock()
    static let logger = Logger(label: "autosam.postgres", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Connects (creating or migrating the schema) as worker `worker` (nil: host name and pid).
    public init(config: ServiceConfig, worker: String? = nil, migrate: Bool = true) throws {
        var password: String? = config.queuePassword.isEmpty ? nil : config.queuePassword
        if !config.queuePasswordFile.isEmpty {
            guard let text = try? String(contentsOfFile: config.queuePasswordFile, encoding: .utf8) else {
                throw ConfigError("cannot read queue.password_file \(config.queuePasswordFile)")
            }
            password = text.trimmingCharacters(in: .newlines)
        }
        if config.queueHost.hasPrefix("/") {
            configuration = .init(unixSocketPath: config.queueHost + "/.s.PGSQL.\(config.queuePort)", username: config.queueUser,
                                  password: password, database: config.queueDatabase)
            target = "\(config.queueUser)@\(config.queueHost) (socket, port \(config.queuePort)), database \(config.queueDatabase)"
        } else {
            let tls: PostgresConnection.Configuration.TLS
            switch config.queueTLS {
            case "disable": tls = .disable
            default:
                let context: NIOSSLContext
                do { context = try NIOSSLContext(configuration: .makeClientConfiguration()) } catch {
                    throw ConfigError("queue.tls = \(config.queueTLS): cannot set up TLS: \(error)")
                }
                tls = config.queueTLS == "require" ? .require(context) : .prefer(context)
            }
            configuration = .init(host: config.queueHost, port: config.queuePort, username: config.queueUser, password: password,
                                  database: config.queueDatabase, tls: tls)
            target = "\(config.queueUser)@\(config.queueHost):\(config.queuePort), database \(config.queueDatabase)"
        }
        self.worker = worker ?? (config.queueWorker.isEmpty ? "\(Self.hostName())-\(getpid())" : config.queueWorker)
        lease = config.queueLease
        statementTimeout = config.queueStatementTimeout
        if migrate { try self.migrate() }
    }

    deinit { if let c = connection { Self.close(c) } }

    static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count)
        return String(cString: buf)
    }

    // MARK: connection and statements

    /// A statement's rows, on this worker's connection (opened if need be). Connection failures
    /// and time-outs close the connection and throw `JournalUnavailable`.
    @discardableResult
    private func rows(_ query: PostgresQuery, on conn: PostgresConnection? = nil) throws -> [PostgresRandomAccessRow] {
        let c = try conn ?? connected()
        let box = NIOLockedValueBox([PostgresRow]())
        let timeout = c.eventLoop.scheduleTask(in: .milliseconds(Int64(statementTimeout * 1000))) { Self.close(c) }
        defer { timeout.cancel() }
        do {
            _ = try c.query(query, logger: Self.logger) { row in box.withLockedValue { $0.append(row) } }.wait()
        } catch let e as PSQLError where e.code == .server {
            throw ServerError(message: e.serverInfo?[.message] ?? "server error", state: e.serverInfo?[.sqlState] ?? "")
        } catch {
            dropConnection()
            throw JournalUnavailable(description: "the PostgreSQL queue (\(target)) cannot be reached: \(Self.describe(error))")
        }
        return box.withLockedValue { $0.map { $0.makeRandomAccess() } }
    }

    struct ServerError: Error, CustomStringConvertible {
        var message: String
        var state: String
        var description: String { "PostgreSQL: \(message) (SQLSTATE \(state))" }
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? PSQLError {
            switch e.code {
            case .connectionError: return "connection failed\(e.underlying.map { " (\($0))" } ?? "")"
            case .serverClosedConnection, .uncleanShutdown: return "the server closed the connection"
            case .clientClosedConnection: return "no answer within the statement time-out"
            case .authMechanismRequiresPassword:
                return "the server asks for a password and none is set (queue.password_file, AUTOSAM_QUEUE_PASSWORD or queue.password)"
            case .sslUnsupported: return "the server does not offer TLS, and queue.tls = \"require\""
            default: return "\(e.code)"
            }
        }
        return "\(error)"
    }

    private func connected() throws -> PostgresConnection {
        if let c = connection, !c.isClosed { return c }
        connection = nil
        let id = nextConnectionID
        nextConnectionID += 1
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let future = PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: Self.logger)
        let timeout = loop.scheduleTask(in: .milliseconds(Int64(statementTimeout * 1000))) {
            future.whenSuccess { Self.close($0) }
        }
        defer { timeout.cancel() }
        do {
            let c = try future.wait()
            connection = c
            return c
        } catch let e as PSQLError where e.code == .server {
            throw JournalUnavailable(description: "the PostgreSQL queue (\(target)) refused the connection: \(e.serverInfo?[.message] ?? "server error")")
        } catch {
            throw JournalUnavailable(description: "cannot connect to the PostgreSQL queue (\(target)): \(Self.describe(error))")
        }
    }

    static func close(_ c: PostgresConnection) {
        let _: EventLoopFuture<Void> = c.close()
    }

    private func dropConnection() {
        if let c = connection { Self.close(c) }
        connection = nil
    }

    /// Runs `body` with the connection to itself (one caller at a time).
    @discardableResult
    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// `body` inside BEGIN ... COMMIT (ROLLBACK when it throws).
    @discardableResult
    private func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try locked {
            let c = try connected()
            try rows("BEGIN", on: c)
            do {
                let out = try body(c)
                try rows("COMMIT", on: c)
                return out
            } catch {
                if !c.isClosed { _ = try? rows("ROLLBACK", on: c) }
                throw error
            }
        }
    }

    private func token(_ id: Int64) -> Int64? { heldLock.withLock { held[id] } }
    private func hold(_ id: Int64, _ token: Int64?) { heldLock.withLock { held[id] = token } }

    /// Runs a statement about a study this worker holds: its `WHERE` names the id and the
    /// token; no row changed means the lease went to another worker.
    private func fencedUpdate(_ id: Int64, on c: PostgresConnection, _ make: (Int64) -> PostgresQuery) throws {
        guard let t = token(id) else { throw LeaseLost(study: id) }
        guard !(try rows(make(t), on: c)).isEmpty else {
            hold(id, nil)
            throw LeaseLost(study: id)
        }
    }

    private func event(_ c: PostgresConnection, _ id: Int64?, _ state: String, _ detail: String?) throws {
        try rows("INSERT INTO events (study_id, at, state, detail, worker) VALUES (\(id), autosam_now(), \(state), \(detail), \(worker))", on: c)
    }

    // MARK: schema

    /// Versioned migrations, each in one transaction under an advisory lock, so that workers
    /// starting together apply each once.
    static let migrations: [(String, String)] = [
        ("v1", """
            CREATE OR REPLACE FUNCTION autosam_now() RETURNS double precision
              AS $$ SELECT EXTRACT(EPOCH FROM clock_timestamp())::double precision $$ LANGUAGE sql VOLATILE;
            CREATE TABLE studies (
              id bigserial PRIMARY KEY, name text NOT NULL, kind text NOT NULL DEFAULT '', state text NOT NULL,
              attempts bigint NOT NULL DEFAULT 0, write_failures bigint NOT NULL DEFAULT 0,
              claimed_at double precision NOT NULL, started_at double precision, finished_at double precision,
              next_attempt_at double precision, work_path text NOT NULL, output_name text NOT NULL,
              model_version text, reason text, seconds double precision,
              in_inbox boolean NOT NULL DEFAULT true, owner text, lease_until double precision,
              token bigint NOT NULL DEFAULT 0);
            CREATE UNIQUE INDEX studies_inbox_name ON studies (name) WHERE in_inbox;
            CREATE INDEX studies_state ON studies (state);
            CREATE INDEX studies_output ON studies (output_name);
            CREATE TABLE events (
              id bigserial PRIMARY KEY, study_id bigint, at double precision NOT NULL, state text NOT NULL,
              detail text, worker text);
            CREATE INDEX events_study ON events (study_id);
            CREATE TABLE refits (
              id bigserial PRIMARY KEY, started_at double precision NOT NULL, finished_at double precision,
              volumes bigint NOT NULL, outcome text, candidate_version text, detail text, owner text);
            CREATE UNIQUE INDEX refits_one_running ON refits ((true)) WHERE finished_at IS NULL;
            CREATE TABLE labels (
              id bigserial PRIMARY KEY, name text NOT NULL, state text NOT NULL, received_at double precision NOT NULL,
              volumes bigint NOT NULL DEFAULT 0, reason text, refit_id bigint);
            CREATE TABLE sends (
              id bigserial PRIMARY KEY, study_id bigint NOT NULL, destination text NOT NULL, path text NOT NULL,
              state text NOT NULL, attempts bigint NOT NULL DEFAULT 0, created_at double precision NOT NULL,
              next_attempt_at double precision NOT NULL, sent_at double precision, last_error text,
              owner text, lease_until double precision,
              UNIQUE (study_id, destination, path));
            CREATE INDEX sends_due ON sends (state, next_attempt_at);
            CREATE TABLE workers (
              name text PRIMARY KEY, host text NOT NULL, pid bigint NOT NULL, started_at double precision NOT NULL,
              heartbeat_at double precision NOT NULL, study bigint, done bigint NOT NULL DEFAULT 0,
              stopped boolean NOT NULL DEFAULT false);
            """),
        // Which head each worker serves, so that `autosam status` shows a worker that has not
        // switched to a promoted version.
        ("v2-worker-head", "ALTER TABLE workers ADD COLUMN head text"),
    ]

    func migrate() throws {
        try transaction { c in
            // Any fixed number: the lock that serialises migrations between workers.
            try rows("SELECT pg_advisory_xact_lock(4242001)", on: c)
            try rows("CREATE TABLE IF NOT EXISTS autosam_migrations (name text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())", on: c)
            let done = Set(try rows("SELECT name FROM autosam_migrations", on: c).map { try $0["name"].decode(String.self) })
            for (name, sql) in Self.migrations where !done.contains(name) {
                // One statement at a time (the extended protocol takes no more).
                for statement in sql.components(separatedBy: ";\n") where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    try rows(PostgresQuery(unsafeSQL: statement), on: c)
                }
                try rows("INSERT INTO autosam_migrations (name) VALUES (\(name))", on: c)
            }
        }
    }

    // MARK: studies

    static func study(_ r: PostgresRandomAccessRow) throws -> StudyRecord {
        StudyRecord(
            id: try r["id"].decode(Int64.self), name: try r["name"].decode(String.self), kind: try r["kind"].decode(String.self),
            state: StudyState(rawValue: try r["state"].decode(String.self)) ?? .failed,
            attempts: Int(try r["attempts"].decode(Int64.self)), writeFailures: Int(try r["write_failures"].decode(Int64.self)),
            claimedAt: try r["claimed_at"].decode(Double.self), startedAt: try r["started_at"].decode(Double?.self),
            finishedAt: try r["finished_at"].decode(Double?.self), nextAttemptAt: try r["next_attempt_at"].decode(Double?.self),
            workPath: try r["work_path"].decode(String.self), outputName: try r["output_name"].decode(String.self),
            modelVersion: try r["model_version"].decode(String?.self), reason: try r["reason"].decode(String?.self),
            seconds: try r["seconds"].decode(Double?.self))
    }

    public func claimEntry(name: String, kind: String, workFolder: String, taken isTaken: (String) -> Bool) throws -> StudyRecord? {
        let rec: (StudyRecord, Int64)? = try transaction { c in
            try rows("SELECT pg_advisory_xact_lock(4242002)", on: c)
            guard let row = try rows("""
                INSERT INTO studies (name, kind, state, claimed_at, work_path, output_name, in_inbox, owner, lease_until, token)
                VALUES (\(name), \(kind), 'claimed', autosam_now(), '', '', true, \(worker), autosam_now() + \(lease), 1)
                ON CONFLICT (name) WHERE in_inbox DO NOTHING RETURNING id
                """, on: c).first else { return nil }
            let id = try row["id"].decode(Int64.self)
            let stem = Journal.stem(name)
            let used = try rows("SELECT 1 FROM studies WHERE output_name = \(stem) LIMIT 1", on: c)
            let output = !used.isEmpty || isTaken(stem) ? "\(stem)-\(id)" : stem
            let work = "\(workFolder)/\(id)/\(name)"
            let r = try rows("UPDATE studies SET work_path = \(work), output_name = \(output) WHERE id = \(id) RETURNING *", on: c)
            try event(c, id, "claimed", nil)
            return (try Self.study(r[0]), 1)
        }
        if let rec { hold(rec.0.id, rec.1) }
        return rec?.0
    }

    public func claimMoved(_ id: Int64) throws {
        try locked {
            try fencedUpdate(id, on: try connected()) { t in
                "UPDATE studies SET in_inbox = false, owner = NULL, lease_until = NULL WHERE id = \(id) AND token = \(t) RETURNING id"
            }
        }
        hold(id, nil)
    }

    public func abandonClaim(_ id: Int64) throws {
        try transaction { c in
            guard let t = token(id) else { throw LeaseLost(study: id) }
            try rows("DELETE FROM events WHERE study_id = \(id) AND EXISTS (SELECT 1 FROM studies WHERE id = \(id) AND token = \(t) AND state = 'claimed')", on: c)
            try rows("DELETE FROM studies WHERE id = \(id) AND token = \(t) AND state = 'claimed'", on: c)
        }
        hold(id, nil)
    }

    public func study(_ id: Int64) throws -> StudyRecord? {
        try locked { try rows("SELECT * FROM studies WHERE id = \(id)").first.map(Self.study) }
    }

    public func studies(state: StudyState?) throws -> [StudyRecord] {
        try locked {
            if let state { return try rows("SELECT * FROM studies WHERE state = \(state.rawValue) ORDER BY id").map(Self.study) }
            return try rows("SELECT * FROM studies ORDER BY id").map(Self.study)
        }
    }

    /// Takes the next study: a queued one nobody holds, a retry whose time has come, or one
    /// whose worker's lease ran out (its attempt stays counted, as after a crash); oldest
    /// first, skipping rows another worker is taking at this instant.
    public func nextRunnable(now: Double, latest: Double) throws -> StudyRecord? {
        let taken: (StudyRecord, Int64)? = try transaction { c in
            guard let r = try rows("""
                WITH c AS (
                  SELECT id, state AS was, owner AS previous FROM studies
                  WHERE (lease_until IS NULL OR lease_until < autosam_now())
                    AND (state IN ('claimed', 'processing')
                         OR (state = 'retry' AND (next_attempt_at <= \(now) OR next_attempt_at > \(latest))))
                  ORDER BY (state = 'retry'), id LIMIT 1 FOR UPDATE SKIP LOCKED)
                UPDATE studies s SET owner = \(worker), lease_until = autosam_now() + \(lease), token = s.token + 1,
                  state = CASE WHEN s.state = 'processing' THEN 'claimed' ELSE s.state END
                FROM c WHERE s.id = c.id RETURNING s.*, c.was, c.previous
                """, on: c).first else { return nil }
            let rec = try Self.study(r)
            if try r["was"].decode(String.self) == "processing" {
                let previous = try r["previous"].decode(String?.self) ?? "?"
                try event(c, rec.id, "claimed", "interrupted during attempt \(rec.attempts) on worker \(previous) (its lease ran out); taken over by \(worker)")
            }
            return (rec, try r["token"].decode(Int64.self))
        }
        if let taken { hold(taken.0.id, taken.1) }
        return taken?.0
    }

    public func waitingCount(now: Double, latest: Double) throws -> Int {
        try locked {
            Int(try rows("""
                SELECT COUNT(*) AS n FROM studies WHERE state = 'claimed'
                  OR (state = 'retry' AND (next_attempt_at <= \(now) OR next_attempt_at > \(latest)))
                """)[0]["n"].decode(Int64.self))
        }
    }

    public func markProcessing(_ id: Int64, kind: String) throws {
        try transaction { c in
            try fencedUpdate(id, on: c) { t in
                """
                UPDATE studies SET state = 'processing', kind = \(kind), attempts = attempts + 1, started_at = autosam_now(), in_inbox = false
                WHERE id = \(id) AND token = \(t) RETURNING id
                """
            }
            try event(c, id, "processing", nil)
        }
    }

    public func markDone(_ id: Int64, modelVersion: String, seconds: Double, sends: [(destination: String, path: String)]) throws {
        try transaction { c in
            try fencedUpdate(id, on: c) { t in
                """
                UPDATE studies SET state = 'done', finished_at = autosam_now(), model_version = \(modelVersion), seconds = \(seconds),
                  reason = NULL, next_attempt_at = NULL, owner = NULL, lease_until = NULL WHERE id = \(id) AND token = \(t) RETURNING id
                """
            }
            for s in sends {
                try rows("""
                    INSERT INTO sends (study_id, destination, path, state, created_at, next_attempt_at)
                    VALUES (\(id), \(s.destination), \(s.path), 'pending', autosam_now(), autosam_now()) ON CONFLICT DO NOTHING
                    """, on: c)
            }
            try event(c, id, "done", nil)
        }
        hold(id, nil)
    }

    public func markFailed(_ id: Int64, reason: String) throws {
        try transaction { c in
            try fencedUpdate(id, on: c) { t in
                "UPDATE studies SET state = 'failed', finished_at = autosam_now(), reason = \(reason), owner = NULL, lease_until = NULL WHERE id = \(id) AND token = \(t) RETURNING id"
            }
            try event(c, id, "failed", reason)
        }
        hold(id, nil)
    }

    public func markRetry(_ id: Int64, reason: String, delay: Double) throws {
        try transaction { c in
            try fencedUpdate(id, on: c) { t in
                """
                UPDATE studies SET state = 'retry', write_failures = write_failures + 1, next_attempt_at = \(Journal.now() + delay),
                  reason = \(reason), attempts = GREATEST(0, attempts - 1), owner = NULL, lease_until = NULL
                WHERE id = \(id) AND token = \(t) RETURNING id
                """
            }
            try event(c, id, "retry", reason)
        }
        hold(id, nil)
    }

    public func requeue(_ id: Int64, reason: String) throws {
        try transaction { c in
            try fencedUpdate(id, on: c) { t in
                """
                UPDATE studies SET state = 'claimed', attempts = GREATEST(0, attempts - CASE WHEN state = 'processing' THEN 1 ELSE 0 END),
                  owner = NULL, lease_until = NULL WHERE id = \(id) AND token = \(t) RETURNING id
                """
            }
            try event(c, id, "claimed", reason)
        }
        hold(id, nil)
    }

    /// This worker's own studies left in `processing` (by its previous life under the same
    /// name, or by an attempt whose end the database could not record) go back to the queue.
    public func requeueProcessing(counts: (StudyRecord) -> Bool, why: (Int) -> String) throws -> [StudyRecord] {
        let out: [StudyRecord] = try transaction { c in
            let recs = try rows("SELECT * FROM studies WHERE state = 'processing' AND owner = \(worker) ORDER BY id FOR UPDATE", on: c).map(Self.study)
            for r in recs {
                try rows("""
                    UPDATE studies SET state = 'claimed', attempts = GREATEST(0, attempts - \(counts(r) ? 0 : 1)), owner = NULL, lease_until = NULL
                    WHERE id = \(r.id)
                    """, on: c)
                try event(c, r.id, "claimed", why(r.attempts))
            }
            return recs
        }
        for r in out { hold(r.id, nil) }
        return out
    }

    public func counts() throws -> [StudyState: Int] {
        try locked {
            var out: [StudyState: Int] = [:]
            for r in try rows("SELECT state, COUNT(*) AS n FROM studies GROUP BY state") {
                if let s = StudyState(rawValue: try r["state"].decode(String.self)) { out[s] = Int(try r["n"].decode(Int64.self)) }
            }
            return out
        }
    }

    public func recentDone(limit: Int) throws -> [StudyRecord] {
        try locked { try rows("SELECT * FROM studies WHERE state = 'done' ORDER BY finished_at DESC LIMIT \(limit)").map(Self.study) }
    }

    public func recentFailed(limit: Int) throws -> [StudyRecord] {
        try locked { try rows("SELECT * FROM studies WHERE state = 'failed' ORDER BY finished_at DESC LIMIT \(limit)").map(Self.study) }
    }

    public func doneEvents(_ id: Int64) throws -> Int {
        try locked { Int(try rows("SELECT COUNT(*) AS n FROM events WHERE study_id = \(id) AND state = 'done'")[0]["n"].decode(Int64.self)) }
    }

    /// The study's row is locked while `body` runs, and only if the token is still this
    /// worker's: no other worker can take the study until the transaction ends.
    public func fenced<T>(_ id: Int64, _ body: () throws -> T) throws -> T {
        try transaction { c in
            guard let t = token(id) else { throw LeaseLost(study: id) }
            guard !(try rows("SELECT id FROM studies WHERE id = \(id) AND token = \(t) FOR UPDATE", on: c)).isEmpty else {
                hold(id, nil)
                throw LeaseLost(study: id)
            }
            return try body()
        }
    }

    public func exclusive<T>(_ name: String, _ body: () throws -> T) throws -> T {
        try transaction { c in
            try rows("SELECT pg_advisory_xact_lock(hashtext(\("autosam:" + name)))", on: c)
            return try body()
        }
    }

    // MARK: labels and refits

    public func recordLabel(name: String, accepted: Bool, volumes: Int, reason: String?) throws -> Int64 {
        try locked {
            try rows("""
                INSERT INTO labels (name, state, received_at, volumes, reason)
                VALUES (\(name), \(accepted ? "accepted" : "rejected"), autosam_now(), \(volumes), \(reason)) RETURNING id
                """)[0]["id"].decode(Int64.self)
        }
    }

    public func pendingLabelledVolumes() throws -> Int {
        try locked {
            Int(try rows("SELECT COALESCE(SUM(volumes), 0)::bigint AS n FROM labels WHERE state = 'accepted' AND refit_id IS NULL")[0]["n"].decode(Int64.self))
        }
    }

    public func labels() throws -> [LabelRecord] {
        try locked {
            try rows("SELECT * FROM labels ORDER BY id").map { r in
                LabelRecord(id: try r["id"].decode(Int64.self), name: try r["name"].decode(String.self), state: try r["state"].decode(String.self),
                            receivedAt: try r["received_at"].decode(Double.self), volumes: Int(try r["volumes"].decode(Int64.self)),
                            reason: try r["reason"].decode(String?.self), refitId: try r["refit_id"].decode(Int64?.self))
            }
        }
    }

    /// One refit at a time in the whole cluster (a unique index on the unfinished row); a
    /// refit whose worker stopped sending heartbeats is closed as abandoned first.
    public func beginRefit(volumes: Int) throws -> Int64? {
        try transaction { c in
            try closeStaleRefits(c)
            return try rows("""
                INSERT INTO refits (started_at, volumes, owner) VALUES (autosam_now(), \(volumes), \(worker))
                ON CONFLICT DO NOTHING RETURNING id
                """, on: c).first.map { try $0["id"].decode(Int64.self) }
        }
    }

    private func closeStaleRefits(_ c: PostgresConnection) throws {
        try rows("""
            UPDATE refits SET finished_at = autosam_now(), outcome = 'abandoned', detail = 'its worker (' || COALESCE(owner, '?') || ') stopped during the refit'
            WHERE finished_at IS NULL AND (owner = \(worker) OR NOT EXISTS (
              SELECT 1 FROM workers w WHERE w.name = refits.owner AND NOT w.stopped AND w.heartbeat_at > autosam_now() - \(lease)))
            """, on: c)
    }

    public func finishRefit(_ id: Int64, outcome: String, candidate: String?, detail: String, consumed: Bool) throws {
        try transaction { c in
            try rows("""
                UPDATE refits SET finished_at = autosam_now(), outcome = \(outcome), candidate_version = \(candidate), detail = \(detail)
                WHERE id = \(id)
                """, on: c)
            if consumed {
                try rows("UPDATE labels SET refit_id = \(id) WHERE state = 'accepted' AND refit_id IS NULL", on: c)
            }
        }
    }

    public func closeInterruptedRefits() throws {
        try transaction { c in try closeStaleRefits(c) }
    }

    static func refit(_ r: PostgresRandomAccessRow) throws -> RefitRecord {
        RefitRecord(id: try r["id"].decode(Int64.self), startedAt: try r["started_at"].decode(Double.self),
                    finishedAt: try r["finished_at"].decode(Double?.self), volumes: Int(try r["volumes"].decode(Int64.self)),
                    outcome: try r["outcome"].decode(String?.self), candidateVersion: try r["candidate_version"].decode(String?.self),
                    detail: try r["detail"].decode(String?.self))
    }

    public func lastRefit() throws -> RefitRecord? {
        try locked { try rows("SELECT * FROM refits ORDER BY id DESC LIMIT 1").first.map(Self.refit) }
    }

    public func refits() throws -> [RefitRecord] {
        try locked { try rows("SELECT * FROM refits ORDER BY id").map(Self.refit) }
    }

    public func lastRefitFinished() throws -> Double? {
        try locked { try rows("SELECT MAX(finished_at) AS t FROM refits WHERE outcome != 'abandoned'")[0]["t"].decode(Double?.self) }
    }

    // MARK: sends

    /// Due sends, each leased to this worker for the lease time so that two workers never
    /// send the same file at once.
    public func dueSends(now: Double, latest: Double, limit: Int) throws -> [SendRecord] {
        try locked {
            try rows("""
                WITH c AS (SELECT id FROM sends WHERE state = 'pending' AND (next_attempt_at <= \(now) OR next_attempt_at > \(latest))
                             AND (lease_until IS NULL OR lease_until < autosam_now())
                           ORDER BY next_attempt_at, id LIMIT \(limit) FOR UPDATE SKIP LOCKED)
                UPDATE sends s SET owner = \(worker), lease_until = autosam_now() + \(lease) FROM c WHERE s.id = c.id RETURNING s.*
                """).map(Self.send).sorted { ($0.nextAttemptAt, $0.id) < ($1.nextAttemptAt, $1.id) }
        }
    }

    public func markSent(_ id: Int64) throws {
        try locked {
            try rows("UPDATE sends SET state = 'sent', attempts = attempts + 1, sent_at = autosam_now(), last_error = NULL, lease_until = NULL WHERE id = \(id)")
        }
    }

    public func markSendFailed(_ id: Int64, error: String, delay: Double) throws {
        try locked {
            try rows("UPDATE sends SET attempts = attempts + 1, last_error = \(error), next_attempt_at = \(Journal.now() + delay), lease_until = NULL WHERE id = \(id)")
        }
    }

    public func sends(study: Int64?) throws -> [SendRecord] {
        try locked {
            if let study { return try rows("SELECT * FROM sends WHERE study_id = \(study) ORDER BY id").map(Self.send) }
            return try rows("SELECT * FROM sends ORDER BY id").map(Self.send)
        }
    }

    public func sendSummary() throws -> [SendSummary] {
        try locked {
            try rows("""
                SELECT destination,
                       COUNT(*) FILTER (WHERE state = 'sent') AS sent, COUNT(*) FILTER (WHERE state = 'pending') AS pending,
                       COALESCE(MAX(attempts) FILTER (WHERE state = 'pending'), 0) AS tries,
                       (SELECT last_error FROM sends s2 WHERE s2.destination = sends.destination AND s2.state = 'pending'
                          AND s2.last_error IS NOT NULL ORDER BY s2.next_attempt_at DESC LIMIT 1) AS last_error,
                       MIN(next_attempt_at) FILTER (WHERE state = 'pending') AS next_attempt_at
                FROM sends GROUP BY destination ORDER BY destination
                """).map { r in
                SendSummary(destination: try r["destination"].decode(String.self), sent: Int(try r["sent"].decode(Int64.self)),
                            pending: Int(try r["pending"].decode(Int64.self)), maxAttempts: Int(try r["tries"].decode(Int64.self)),
                            lastError: try r["last_error"].decode(String?.self), nextAttemptAt: try r["next_attempt_at"].decode(Double?.self))
            }
        }
    }

    static func send(_ r: PostgresRandomAccessRow) throws -> SendRecord {
        SendRecord(id: try r["id"].decode(Int64.self), studyId: try r["study_id"].decode(Int64.self),
                   destination: try r["destination"].decode(String.self), path: try r["path"].decode(String.self),
                   state: try r["state"].decode(String.self), attempts: Int(try r["attempts"].decode(Int64.self)),
                   nextAttemptAt: try r["next_attempt_at"].decode(Double.self), sentAt: try r["sent_at"].decode(Double?.self),
                   lastError: try r["last_error"].decode(String?.self))
    }

    // MARK: actions and workers

    public func recordAction(user: String, action: String, detail: String) throws {
        try locked {
            try rows("INSERT INTO events (study_id, at, state, detail, worker) VALUES (NULL, autosam_now(), \("web:" + action), \("\(user): \(detail)"), \(worker))")
        }
    }

    public func actions(limit: Int) throws -> [(at: Double, action: String, detail: String)] {
        try locked {
            try rows("SELECT at, state, detail FROM events WHERE state LIKE 'web:%' ORDER BY id DESC LIMIT \(limit)").map {
                (at: try $0["at"].decode(Double.self), action: String(try $0["state"].decode(String.self).dropFirst(4)),
                 detail: try $0["detail"].decode(String?.self) ?? "")
            }
        }
    }

    public func heartbeat(study: Int64?, done: Int, head: String?) throws -> [Int64] {
        let mine = heldLock.withLock { held }
        var lost: [Int64] = []
        try transaction { c in
            try rows("""
                INSERT INTO workers (name, host, pid, started_at, heartbeat_at, study, done, stopped, head)
                VALUES (\(worker), \(Self.hostName()), \(Int64(getpid())), autosam_now(), autosam_now(), \(study), \(Int64(done)), false, \(head))
                ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, heartbeat_at = EXCLUDED.heartbeat_at,
                  study = EXCLUDED.study, done = EXCLUDED.done, stopped = false, head = COALESCE(EXCLUDED.head, workers.head),
                  started_at = CASE WHEN workers.pid = EXCLUDED.pid AND NOT workers.stopped THEN workers.started_at ELSE EXCLUDED.started_at END
                """, on: c)
            for (id, t) in mine.sorted(by: { $0.key < $1.key }) {
                if try rows("UPDATE studies SET lease_until = autosam_now() + \(lease) WHERE id = \(id) AND token = \(t) RETURNING id", on: c).isEmpty {
                    lost.append(id)
                }
            }
        }
        for id in lost { hold(id, nil) }
        return lost
    }

    public func workerStopped() throws {
        try locked {
            try rows("UPDATE workers SET stopped = true, study = NULL, heartbeat_at = autosam_now() WHERE name = \(worker)")
        }
    }

    public func workers() throws -> [WorkerRecord] {
        try locked {
            try rows("SELECT *, autosam_now() - heartbeat_at AS silent FROM workers ORDER BY name").map { r in
                WorkerRecord(name: try r["name"].decode(String.self), host: try r["host"].decode(String.self), pid: Int(try r["pid"].decode(Int64.self)),
                             startedAt: try r["started_at"].decode(Double.self), heartbeatAt: try r["heartbeat_at"].decode(Double.self),
                             study: try r["study"].decode(Int64?.self), done: Int(try r["done"].decode(Int64.self)),
                             head: try r["head"].decode(String?.self),
                             stopped: try r["stopped"].decode(Bool.self), silentFor: try r["silent"].decode(Double.self))
            }
        }
    }

    /// A study's events, oldest first: (state, detail, worker), for audits and tests.
    public func events(study id: Int64) throws -> [(state: String, detail: String?, worker: String?)] {
        try locked {
            try rows("SELECT state, detail, worker FROM events WHERE study_id = \(id) ORDER BY id").map {
                (state: try $0["state"].decode(String.self), detail: try $0["detail"].decode(String?.self), worker: try $0["worker"].decode(String?.self))
            }
        }
    }

    /// The whole cluster's finished studies per hour over the last `window` seconds.
    public func throughput(window: Double = 3600) throws -> Double {
        try locked {
            let n = try rows("SELECT COUNT(*) AS n FROM studies WHERE state = 'done' AND finished_at > autosam_now() - \(window)")[0]["n"].decode(Int64.self)
            return Double(n) * 3600 / window
        }
    }
}
