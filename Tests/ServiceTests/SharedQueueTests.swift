import AutoSAM
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import Service

/// A real PostgreSQL (Debian's package) in a folder of its own, reached over its Unix socket
/// only, run as an unprivileged user (`postgres` when the tests run as root).
final class PostgresPeer: @unchecked Sendable {
    static let bin: String? = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.reversed().map { "\(root)/\($0)/bin" }.first { FileManager.default.isExecutableFile(atPath: $0 + "/pg_ctl") }
    }()
    static var available: Bool { bin != nil && (getuid() != 0 || getpwnam("postgres") != nil) }
    static var required: Bool { ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_PEERS"] == "1" }
    let root: String
    var socketFolder: String { root }

    /// A folder for the server and the workers' data, directly under /tmp: the server's user
    /// must reach it, and the test run's own temporary folder may be private to us (mode 0700).
    static func folder() throws -> String {
        var template = Array("/tmp/autosam-pg-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        try #require(made != nil, "mkdtemp: \(String(cString: strerror(errno)))")
        let path = String(cString: made!)
        chmod(path, 0o755)
        return path
    }
    var log: String { (try? String(contentsOfFile: root + "/server.log", encoding: .utf8)) ?? "" }

    /// The port (of the socket's name, and on loopback when `password` is set).
    let port: Int
    let password: String?

    /// `password`: the server also listens on 127.0.0.1:`port` and asks connections over TCP
    /// for this password (SCRAM); the socket stays trusted.
    init(root: String, port: Int = 5432, password: String? = nil) throws {
        self.root = root
        self.port = port
        self.password = password
        if getuid() == 0 {
            let pw = try #require(getpwnam("postgres"))
            chown(root, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        var initArgs = ["-D", root + "/db", "-U", "autosam", "--no-sync", "-E", "UTF8"]
        if let password {
            try password.write(toFile: root + "/pw", atomically: true, encoding: .utf8)
            if getuid() == 0, let pw = getpwnam("postgres") { chown(root + "/pw", pw.pointee.pw_uid, pw.pointee.pw_gid) }
            initArgs += ["--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + root + "/pw"]
        } else {
            initArgs += ["-A", "trust"]
        }
        let r = try asServerUser("initdb", initArgs)
        try? FileManager.default.removeItem(atPath: root + "/pw")
        try #require(r.status == 0, "initdb: \(r.output)")
        try start()
        let c = try asServerUser("psql", ["-h", root, "-p", "\(port)", "-U", "autosam", "-d", "postgres", "-q", "-c", "CREATE DATABASE autosam"])
        try #require(c.status == 0, "createdb: \(c.output)")
    }

    func asServerUser(_ tool: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let exe = try #require(Self.bin) + "/" + tool
        if getuid() == 0 { return try runTool("/usr/sbin/runuser", ["-u", "postgres", "--", exe] + args) }
        return try runTool(exe, args)
    }

    /// Starts the server and waits until it takes connections. The server pg_ctl leaves
    /// running must inherit none of this process's descriptors (a pipe that a test reads to its
    /// end would never end): pg_ctl runs with every descriptor above 2 closed, its output in a file.
    func start() throws {
        let exe = try #require(Self.bin) + "/pg_ctl"
        let args = ["-D", root + "/db", "-l", root + "/server.log", "-w", "-t", "60", "start",
                    "-o", "-k \(root) -p \(port) -c listen_addresses='\(password == nil ? "" : "127.0.0.1")' -c fsync=off -c max_connections=40"]
        let argv = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", exe] + args : [exe] + args
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, root + "/pg_ctl.out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in open where fd > 2 && fcntl(fd, F_GETFD) >= 0 { posix_spawn_file_actions_addclose(&actions, fd) }
        var pid: pid_t = 0
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        try #require(posix_spawn(&pid, argv[0], &actions, nil, cargs, environ) == 0, "cannot run pg_ctl")
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        try #require(status == 0, "pg_ctl start failed:\n\(log)")
    }

    func stop(mode: String = "fast") {
        _ = try? asServerUser("pg_ctl", ["-D", root + "/db", "-m", mode, "-w", "stop"])
    }

    /// The `[queue]` section for workers that share this database.
    func queueSection(lease: Double, worker: String? = nil) -> String {
        "[queue]\nbackend = \"postgres\"\nhost = \"\(root)\"\nport = \(port)\nlease_s = \(lease)\nstatement_timeout_s = 5\n"
            + (worker.map { "worker = \"\($0)\"\n" } ?? "")
    }

    func config(lease: Double = 30) throws -> ServiceConfig {
        try ServiceConfig.parse("[paths]\ndata = \"\(root)/data\"\n" + queueSection(lease: lease))
    }
}

/// Several workers sharing one queue in PostgreSQL (issue 22): the queue's rules checked on
/// the journal itself, then three real worker processes, one killed with -9 mid-study and the
/// database restarted mid-run, every study done exactly once.
@Suite(.serialized, .enabled(if: PostgresPeer.available || PostgresPeer.required, "PostgreSQL (Debian: postgresql) is needed"))
struct SharedQueueTests {
    func peer() throws -> (PostgresPeer, String) {
        try #require(PostgresPeer.available, "PostgreSQL is missing (AUTOSAM_REQUIRE_PEERS=1)")
        let root = try PostgresPeer.folder()
        return (try PostgresPeer(root: root), root)
    }

    /// Workers starting together migrate the schema once; an inbox entry is claimed by one
    /// worker only; a study's lease, once lapsed, goes to another worker with a new token, and
    /// the first worker's writes (fenced bodies included) then change nothing; one refit at a
    /// time in the cluster.
    @Test func leasesClaimsAndFencing() throws {
        let (pg, root) = try peer()
        defer { pg.stop(mode: "immediate"); removeTempFolder(root) }
        let config = try pg.config(lease: 1)
        let opened = NSLock()
        nonisolated(unsafe) var journals: [PostgresJournal] = []
        nonisolated(unsafe) var errors: [String] = []
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            do {
                let j = try PostgresJournal(config: config, worker: "w\(i)")
                opened.withLock { journals.append(j) }
            } catch { opened.withLock { errors.append("\(error)") } }
        }
        #expect(errors.isEmpty, "\(errors)")
        journals.sort { $0.worker < $1.worker }
        let (a, b) = (journals[0], journals[1])

        let claimA = try a.claimEntry(name: "p1.nii.gz", kind: "", workFolder: "/w", taken: { _ in false })
        let claimB = try b.claimEntry(name: "p1.nii.gz", kind: "", workFolder: "/w", taken: { _ in false })
        let rec = try #require(claimA)
        #expect(claimB == nil, "two workers claimed one inbox entry")
        #expect(rec.outputName == "p1")
        // Not takeable while the claimer moves it; free for any worker once moved.
        #expect(try b.nextRunnable() == nil)
        try a.claimMoved(rec.id)
        let taken = try #require(try b.nextRunnable())
        #expect(taken.id == rec.id)
        #expect(try a.nextRunnable() == nil, "a study held under a live lease was taken twice")
        try b.markProcessing(rec.id, kind: "nifti")
        // A second claim of the same name, after the first left the inbox: a new study.
        let again = try #require(try a.claimEntry(name: "p1.nii.gz", kind: "", workFolder: "/w", taken: { _ in false }))
        #expect(again.outputName == "p1-\(again.id)")
        try a.claimMoved(again.id)

        // b stops renewing: after the lease, a takes the study over with a new token.
        usleep(1_500_000)
        let over = try #require(try a.nextRunnable())
        #expect(over.id == rec.id && over.attempts == 1, "\(over)")
        #expect(throws: LeaseLost.self) { try b.markDone(rec.id, modelVersion: "x", seconds: 1) }
        var ranStale = false
        #expect(throws: LeaseLost.self) { try b.fenced(rec.id) { ranStale = true } }
        #expect(!ranStale, "a fenced body ran for a worker whose lease had lapsed")
        #expect(try b.heartbeat(study: nil, done: 0).isEmpty)
        var ran = false
        try a.fenced(rec.id) { ran = true }
        #expect(ran)
        #expect(try a.heartbeat(study: rec.id, done: 0).isEmpty)
        try a.markProcessing(rec.id, kind: "nifti")
        try a.markDone(rec.id, modelVersion: "x", seconds: 1)
        #expect(try a.doneEvents(rec.id) == 1)
        #expect(try a.study(rec.id)?.attempts == 2)
        #expect(try b.workers().map(\.name).contains("w1"))

        // One refit in the cluster; a refit whose worker fell silent is closed as abandoned.
        let r1 = try #require(try a.beginRefit(volumes: 1))
        #expect(try b.beginRefit(volumes: 1) == nil)
        usleep(1_200_000)  // a's heartbeat (at the take-over above) is now older than the lease
        let r2 = try #require(try b.beginRefit(volumes: 1))
        #expect(try b.refits().first { $0.id == r1 }?.outcome == "abandoned")
        try b.finishRefit(r2, outcome: "promoted", candidate: "v1", detail: "", consumed: true)
        #expect(try a.lastRefit()?.outcome == "promoted")
    }

    /// Three worker processes share one inbox of 30 studies; one is killed with -9 in the middle
    /// of a study and started again, and the database is restarted once mid-run. Every study is
    /// done exactly once: one journal row each, done once, one outputs folder naming it, one
    /// cohort row, its input archived; nothing is left in the inbox, in work/ or staged.
    @Test func threeWorkersAKillNineAndADatabaseRestartDoEveryStudyOnce() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let (pg, root) = try peer()
        defer { pg.stop(mode: "immediate"); removeTempFolder(root) }
        let fm = FileManager.default
        let config = try DaemonProcessTests().writeConfig(root, extra: pg.queueSection(lease: 3))
        let journal = try PostgresJournal(config: try ServiceConfig.load(path: config), worker: "test")
        let sources = try (0..<3).map { i in
            let p = root + "/src\(i).nii.gz"
            _ = try Fixtures.shortCine(20 + i, to: p, frames: 2)
            return p
        }
        var workers = try (0..<3).map { i in
            try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/worker\(i).log")
        }
        defer { for w in workers { _ = w.stop(10) } }
        #expect(try waitFor(60) { (try? journal.workers().count) == 3 }, "\(workers.map(\.log))")
        let names = (0..<30).map { String(format: "s%02d.nii.gz", $0) }
        for (i, n) in names.enumerated() { try dropIntoInbox(sources[i % 3], inbox: root + "/data/inbox", as: n) }

        // kill -9 a worker in the middle of a study (its log says the attempt began and not
        // that it ended), then start a new one in its place.
        var held: Int64?
        let busy = try waitFor(120) {
            let lines = workers[0].log.split(separator: "\n")
            guard let last = lines.last(where: { $0.contains("): attempt ") }),
                  let n = last.split(separator: "#").last?.split(separator: " ").first.flatMap({ Int64($0) }),
                  !lines.contains(where: { $0.contains("study #\(n) done") || $0.contains("study #\(n) failed") }) else { return false }
            held = n
            return true
        }
        try #require(busy, "worker 0 never took a study: \(workers[0].log)")
        kill(workers[0].process.processIdentifier, SIGKILL)
        #expect(workers[0].waitExit(10))
        workers[0] = try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/worker3.log")

        // Then the database goes away for two seconds while the others work.
        #expect(try waitFor(60) { (try journal.counts()[.done] ?? 0) >= 8 })
        pg.stop(mode: "fast")
        sleep(2)
        try pg.start()

        let finished = try waitFor(300) {
            let c = try journal.counts()
            return c[.done] == 30
        }
        let logs = workers.map(\.log).joined(separator: "\n----\n")
        try #require(finished, "\((try? journal.counts()) ?? [:])\n\(logs)")
        let studies = try journal.studies()
        #expect(studies.count == 30, "\(studies.map(\.name))")
        #expect(Set(studies.map(\.name)) == Set(names))
        for s in studies {
            let n = try journal.doneEvents(s.id)
            #expect(n == 1, "study \(s.id) done \(n) times")
        }
        let heldEvents = try journal.events(study: try #require(held))
        #expect(heldEvents.contains { $0.detail?.contains("its lease ran out); taken over by") == true },
                "the killed worker's study #\(held!) was not taken over: \(heldEvents)")

        let outbox = try fm.contentsOfDirectory(atPath: root + "/data/outbox")
        #expect(!outbox.contains { $0.hasPrefix(".staging") }, "\(outbox)")
        let folders = outbox.filter { $0 != "cohort.csv" }
        #expect(folders.count == 30, "\(folders.sorted())")
        var ids: [Int64] = []
        for f in folders {
            let data = try #require(fm.contents(atPath: root + "/data/outbox/\(f)/provenance.json"))
            ids.append(try JSONDecoder().decode(Provenance.self, from: data).journalId)
        }
        #expect(Set(ids) == Set(studies.map(\.id)) && ids.count == 30)
        let cohort = try String(contentsOfFile: root + "/data/outbox/cohort.csv", encoding: .utf8)
            .split(separator: "\n").dropFirst().map { Int64($0.split(separator: ",")[0])! }
        #expect(cohort.count == 30 && Set(cohort) == Set(studies.map(\.id)), "\(cohort.sorted())")
        #expect(try fm.contentsOfDirectory(atPath: root + "/data/inbox").isEmpty)
        #expect(try fm.contentsOfDirectory(atPath: root + "/data/work").isEmpty)
        #expect(try fm.contentsOfDirectory(atPath: root + "/data/archive").count == 30)
        #expect(logs.contains("cannot connect to the PostgreSQL queue") || logs.contains("cannot be reached"), "no worker noticed the database restart")
        let status = try runTool(bin, ["status", "--config", config])
        #expect(status.status == 0 && status.output.contains("cluster: 30 studies in the last hour"), "\(status.output)")
    }

    /// A head promoted in the shared model store (as `autosam model promote` or a refit does)
    /// is served by every worker from its next study on, and provenance names it.
    @Test func aPromotionReachesEveryWorkerBetweenStudies() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        let (pg, root) = try peer()
        defer { pg.stop(mode: "immediate"); removeTempFolder(root) }
        let config = try DaemonProcessTests().writeConfig(root, extra: pg.queueSection(lease: 5))
        let store = try Fixtures.modelStore(root + "/data/models", versions: 2)
        let journal = try PostgresJournal(config: try ServiceConfig.load(path: config), worker: "test")
        let src = root + "/src.nii.gz"
        _ = try Fixtures.shortCine(23, to: src, frames: 2)
        let workers = try (0..<2).map { try DaemonProcessTests.Spawned(binary: bin, config: config, log: root + "/worker\($0).log") }
        defer { for w in workers { _ = w.stop(10) } }
        #expect(try waitFor(60) { (try? journal.workers().count) == 2 })
        func run(_ names: [String]) throws -> [String: (version: String, worker: String)] {
            for n in names { try dropIntoInbox(src, inbox: root + "/data/inbox", as: n + ".nii.gz") }
            let done = try waitFor(120) { try journal.studies().filter { names.contains($0.outputName) && $0.state == .done }.count == names.count }
            try #require(done, "\(workers.map(\.log))")
            var out: [String: (String, String)] = [:]
            for r in try journal.studies() where names.contains(r.outputName) {
                let data = try #require(FileManager.default.contents(atPath: root + "/data/outbox/\(r.outputName)/provenance.json"))
                let worker = try journal.events(study: r.id).last { $0.state == "done" }?.worker ?? "?"
                out[r.outputName] = (try JSONDecoder().decode(Provenance.self, from: data).head.version, worker)
            }
            return out
        }
        let before = try run((0..<4).map { "a\($0)" })
        #expect(Set(before.values.map(\.version)) == ["v0001"], "\(before)")
        try store.promote("v0002")
        let after = try run((0..<8).map { "b\($0)" })
        #expect(Set(after.values.map(\.version)) == ["v0002"], "\(after)")
        #expect(Set(after.values.map(\.worker)).count == 2, "one worker did every study: \(after)")
        // Each worker's row in the queue names the head it serves now.
        #expect(try waitFor(10) { try journal.workers().filter { $0.name != "test" }.allSatisfy { $0.head == "v0002" } },
                "\((try? journal.workers()) ?? [])")
    }

    /// Over TCP with a password (SCRAM), as workers on other hosts connect: the password from
    /// the environment or a file works, is never logged nor printed by `watch --check`; a wrong
    /// one, a server that offers no TLS with `queue.tls = "require"`, and a closed port each
    /// stop the worker at start with a clear reason.
    @Test func overTCPWithAPassword() throws {
        let bin = try #require(autosamBinary(), "the autosam binary (build the package, or set AUTOSAM_BIN)")
        try #require(PostgresPeer.available, "PostgreSQL is missing (AUTOSAM_REQUIRE_PEERS=1)")
        let root = try PostgresPeer.folder()
        let secret = "Cardiac-\(UInt32.random(in: 100_000...999_999))-secret"
        let port = Int(try #require(freeTCPPort()))
        let pg = try PostgresPeer(root: root, port: port, password: secret)
        defer { pg.stop(mode: "immediate"); removeTempFolder(root) }
        let tcp = "[queue]\nbackend = \"postgres\"\nhost = \"127.0.0.1\"\nport = \(port)\nlease_s = 3\nstatement_timeout_s = 5\n"
        func config(_ extra: String) throws -> ServiceConfig {
            try ServiceConfig.parse("[paths]\ndata = \"\(root)/data\"\n" + tcp + extra)
        }
        try secret.write(toFile: root + "/queue.pw", atomically: true, encoding: .utf8)
        let viaFile = try PostgresJournal(config: try config("password_file = \"\(root)/queue.pw\"\n"), worker: "file")
        #expect(try viaFile.heartbeat(study: nil, done: 0).isEmpty)
        #expect(try viaFile.workers().map(\.name) == ["file"])
        for (extra, expected) in [("password = \"wrong\"\n", "password authentication failed"),
                                  ("", "password"),
                                  ("password = \"\(secret)\"\ntls = \"require\"\n", "does not offer TLS")] {
            do {
                _ = try PostgresJournal(config: try config(extra), worker: "bad")
                Issue.record("connected with: \(extra)")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
                #expect(!"\(error)".contains(secret))
            }
        }
        let closed = Int(try #require(freeTCPPort()))
        #expect(throws: JournalUnavailable.self) {
            _ = try PostgresJournal(config: try ServiceConfig.parse(
                "[paths]\ndata = \"\(root)/data\"\n[queue]\nbackend = \"postgres\"\nhost = \"127.0.0.1\"\nport = \(closed)\n"))
        }

        // A worker with the password in its environment, as the unit's EnvironmentFile gives it.
        let path = try DaemonProcessTests().writeConfig(root, extra: tcp)
        let check = try runTool(bin, ["watch", "--config", path, "--check"],
                                environment: ProcessInfo.processInfo.environment.merging(["AUTOSAM_QUEUE_PASSWORD": secret]) { $1 })
        #expect(check.status == 0 && check.output.contains("queue.password = (set, not shown)") && !check.output.contains(secret), "\(check.output)")
        let worker = try DaemonProcessTests.Spawned(binary: bin, config: path, log: root + "/worker.log",
                                                    environment: ["AUTOSAM_QUEUE_PASSWORD": secret])
        defer { _ = worker.stop(10) }
        #expect(try waitFor(60) { (try? viaFile.workers().count) == 2 }, "\(worker.log)")
        _ = try Fixtures.shortCine(24, to: root + "/p.nii.gz", frames: 2)
        try dropIntoInbox(root + "/p.nii.gz", inbox: root + "/data/inbox", as: "p.nii.gz")
        #expect(try waitFor(120) { try viaFile.counts()[.done] == 1 }, "\(worker.log)")
        #expect(worker.stop(30))
        #expect(!worker.log.contains(secret))
        #expect(try viaFile.workers().first { $0.name != "file" }?.stopped == true)
    }
}
