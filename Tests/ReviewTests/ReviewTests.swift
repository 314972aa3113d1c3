import Foundation
import Testing

@testable import Review
@testable import Service

@Suite struct WebUsersTests {
    func tempFile() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("autosam-web-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir + "/web-users"
    }

    @Test func passwordsAreStoredHashedAndVerified() throws {
        let path = try tempFile()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        try WebUsers.set(name: "alice", password: "first password", in: path, cost: 4)
        try WebUsers.set(name: "bob", password: "bob's password", in: path, cost: 4)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("first password") && text.contains("alice:$2"))
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        var users = try WebUsers.load(path)
        #expect(users.names == ["alice", "bob"])
        #expect(users.verify(name: "alice", password: "first password"))
        #expect(!users.verify(name: "alice", password: "bob's password"))
        #expect(!users.verify(name: "carol", password: "first password"))
        // A new password replaces the old one; the other user is kept.
        try WebUsers.set(name: "alice", password: "second password", in: path, cost: 4)
        users = try WebUsers.load(path)
        #expect(users.names == ["alice", "bob"])
        #expect(users.verify(name: "alice", password: "second password") && !users.verify(name: "alice", password: "first password"))
        #expect(users.verify(name: "bob", password: "bob's password"))
    }

    @Test func badNamesPasswordsAndFilesAreRefusedByName() throws {
        let path = try tempFile()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        #expect(throws: WebUsers.Problem.self) { try WebUsers.set(name: "a:b", password: "long enough password", in: path, cost: 4) }
        #expect(throws: WebUsers.Problem.self) { try WebUsers.set(name: "", password: "long enough password", in: path, cost: 4) }
        #expect(throws: WebUsers.Problem.self) { try WebUsers.set(name: "alice", password: "short", in: path, cost: 4) }
        #expect(try WebUsers.load(path).names.isEmpty, "no file: nobody")
        try "# comment\n\nalice:plaintext\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try WebUsers.load(path)
            Issue.record("a plaintext password was accepted")
        } catch let e as WebUsers.Problem {
            #expect(e.description.contains("line 3") && e.description.contains("not a bcrypt hash"))
        }
        try "alice\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: WebUsers.Problem.self) { try WebUsers.load(path) }
    }
}

@Suite struct ReviewPagesTests {
    @Test func everythingFromFilesIsEscaped() {
        #expect(ReviewPages.esc("<script>alert('x')</script> & \"q\"") == "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;")
        let rec = StudyRecord(id: 7, name: "<img src=x onerror=alert(1)>", kind: "acdc", state: .failed, attempts: 1, writeFailures: 0,
                              claimedAt: 0, startedAt: nil, finishedAt: 1, nextAttemptAt: nil, workPath: "", outputName: "<img src=x onerror=alert(1)>",
                              modelVersion: nil, reason: "bad <b>input</b>", seconds: nil)
        let row = StudyRow(record: rec, summary: nil)
        let list = ReviewPages.studies([row], total: 1, query: .init())
        let page = ReviewPages.page("Study \(rec.outputName)", user: "<u>", csrf: "\"><x", body: ReviewPages.study(row, slices: nil, hasQC: false, files: []))
        for html in [list, page] {
            #expect(!html.contains("<img src=x"))
            #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;"))
        }
        #expect(page.contains("bad &lt;b&gt;input&lt;/b&gt;") && page.contains("&lt;u&gt;") && page.contains("&quot;&gt;&lt;x") && !page.contains("<u>"))
    }

    @Test func numbersAreWrittenAsPrintfWouldAndTimesAsLocalMinutes() {
        // Away from ties (where printf rounds the binary value half to even) the two agree.
        for v in [0.0, 0.04, 1.26, 105.349, 105.37, -2.56, 12345.6789, 0.0999, 7.0] {
            for d in 0...4 {
                #expect(ReviewPages.num(v, d) == String(format: "%.\(d)f", v), "\(v) with \(d) decimals")
            }
        }
        #expect(ReviewPages.num(-0.04, 1) == "0.0", "no negative zero")
        #expect(ReviewPages.num(nil) == "" && ReviewPages.num(.nan) == "" && ReviewPages.num(.infinity) == "")
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm"
        for t in [0.0, 1_796_680_000.0, 1_800_000_059.9] {
            #expect(ReviewPages.time(t) == f.string(from: Date(timeIntervalSince1970: t)))
        }
        #expect(ReviewPages.time(nil) == "")
    }

    func row(_ id: Int64, _ name: String, _ state: StudyState, ef: Double?) -> StudyRow {
        let rec = StudyRecord(id: id, name: name, kind: "nifti", state: state, attempts: 0, writeFailures: 0, claimedAt: 0, startedAt: nil,
                              finishedAt: Double(id), nextAttemptAt: nil, workPath: "", outputName: name, modelVersion: "v0001", reason: nil, seconds: 1)
        let json = ef.map { "{\"review\": {\"uncertainty\": \($0 / 100), \"threshold\": 0.5, \"review\": \($0 > 50)}}" } ?? "{}"
        return StudyRow(record: rec, summary: try? JSONDecoder().decode(StudySummary.self, from: Data(json.utf8)))
    }

    @Test func listSortsFiltersAndKeepsMissingValuesLast() {
        let rows = [row(1, "alpha", .done, ef: 40), row(2, "beta", .done, ef: 60), row(3, "gamma", .failed, ef: nil), row(4, "delta", .done, ef: 55)]
        var q = ReviewPages.ListQuery()
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [4, 3, 2, 1])
        q.sort = "uncertainty"
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [2, 4, 1, 3])
        q.descending = false
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [1, 4, 2, 3])
        q.reviewOnly = true
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [4, 2])
        q = .init()
        q.state = .failed
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [3])
        q = .init()
        q.text = "ET"
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [2])
        q.text = "4"
        #expect(ReviewPages.select(rows, q).map(\.record.id) == [4])
    }
}

/// The overview lists the workers sharing a PostgreSQL queue: each one's condition against the
/// lease, its study linked, names escaped; with the SQLite journal there is no such section.
@Suite struct WorkersOverviewTests {
    func status(_ workers: [WorkerRecord]) -> ServiceStatus {
        ServiceStatus(inboxWaiting: 0, queued: 0, retrying: 0, processing: 1, done: 5, failed: 0, recent: [], meanSeconds: nil,
                      recentFailures: [], currentModel: "embedded default", labelledPending: 0, labelledTotal: 0, lastRefit: nil,
                      pacs: [], workers: workers, studiesPerHour: workers.isEmpty ? nil : 42, leaseSeconds: workers.isEmpty ? nil : 30)
    }

    @Test func workersAreListedWithTheirCondition() {
        let alive = WorkerRecord(name: "ward-a-1", host: "ward-a", pid: 10, startedAt: 0, heartbeatAt: 100, study: 17, done: 3, head: "v0002",
                                 stopped: false, silentFor: 4)
        let silent = WorkerRecord(name: "<b>x</b>", host: "ward-b", pid: 11, startedAt: 0, heartbeatAt: 50, study: nil, done: 2, head: nil,
                                  stopped: false, silentFor: 95)
        let stopped = WorkerRecord(name: "ward-c-1", host: "ward-c", pid: 12, startedAt: 0, heartbeatAt: 60, study: nil, done: 0, head: "v0001",
                                   stopped: true, silentFor: 500)
        let html = ReviewPages.overview(status([alive, silent, stopped]))
        #expect(html.contains("<h2>Workers</h2>") && html.contains("finished 42.0 studies in the last hour"), "\(html)")
        #expect(html.contains("<td>ward-a-1</td><td>ward-a</td><td>10</td><td>alive</td>"), "\(html)")
        #expect(html.contains("<a href=\"/studies/17\">17</a>"))
        #expect(html.contains("<td>v0002</td>") && html.contains("<td>v0001</td>"))
        #expect(html.contains("<td>&lt;b&gt;x&lt;/b&gt;</td><td>ward-b</td><td>11</td><td>SILENT for 95 s</td>") && !html.contains("<b>x</b>"))
        #expect(html.contains("<td>ward-c-1</td><td>ward-c</td><td>12</td><td>stopped</td>"))
        #expect(!ReviewPages.overview(status([])).contains("Workers"))
    }
}
