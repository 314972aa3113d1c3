import AutoSAM
import CardiacImaging
import Foundation
import Hummingbird
import HummingbirdAuth
import HTTPTypes
import QC
import Service

/// What a logged-in session holds: who, and the token every state-changing form must carry.
struct WebSession: Codable, Sendable {
    var user: String
    var csrf: String
}

struct ReviewContext: SessionRequestContext, RequestContext {
    typealias Session = WebSession
    var coreContext: CoreRequestContextStorage
    let sessions: SessionContext<WebSession>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        sessions = .init()
    }
}

/// `autosam web`: the review page. It reads the journal (read-only) and the outbox; the only
/// things it writes are a promotion or roll-back asked for by a logged-in user (the model store,
/// and one journal event naming who). It runs as a process and unit of its own, so it never
/// slows or blocks the daemon.
public enum ReviewServer {
    public static func run(config: ServiceConfig, onRunning: (@Sendable (Int) -> Void)? = nil) async throws {
        let users = try WebUsers.load(config.webUsersPath)
        if users.names.isEmpty {
            FileHandle.standardError.write(Data("autosam web: no users in \(config.webUsersPath); add one with `autosam web-user NAME` (nobody can log in until then)\n".utf8))
        }
        let app = application(config: config, users: users, onRunning: onRunning)
        try await app.runService()
    }

    static func application(
        config: ServiceConfig, users: WebUsers, onRunning: (@Sendable (Int) -> Void)? = nil
    ) -> some ApplicationProtocol {
        let data = ReviewData(config: config)
        let sessionLength = Duration.seconds(Int64(config.webSessionMinutes * 60))
        let router = Router(context: ReviewContext.self)
        router.add(middleware: SecurityHeaders())
        router.add(middleware: SessionMiddleware(
            storage: MemoryPersistDriver(),
            configuration: .init(sessionCookieParameters: .init(name: "autosam_session", path: "/", secure: false, sameSite: .strict),
                                 defaultSessionExpiration: sessionLength)))
        router.add(middleware: RequireLogin(sessionLength: sessionLength))

        router.get("/static/review.css") { _, _ in text(ReviewAssets.css, type: "text/css; charset=utf-8") }
        router.get("/static/review.js") { _, _ in text(ReviewAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/login") { _, context in
            if context.sessions.session != nil { return redirect("/") }
            return html(ReviewPages.login(error: nil))
        }
        router.post("/login") { request, context in
            var request = request
            let form = try await decodeForm(LoginForm.self, &request)
            guard users.verify(name: form.user, password: form.password) else {
                return html(ReviewPages.login(error: "Unknown user or wrong password."), status: .unauthorized)
            }
            context.sessions.createSession(WebSession(user: form.user, csrf: randomToken()), expiresIn: sessionLength)
            return redirect("/")
        }
        router.post("/logout") { request, context in
            var request = request
            _ = try await checkedForm(ActionForm.self, &request, context)
            context.sessions.clearSession()
            return redirect("/login")
        }
        router.get("/") { _, context in
            let s = try context.session()
            guard let status = try? ServiceStatus.read(config: config) else {
                return html(ReviewPages.page("Overview", user: s.user, csrf: s.csrf, body: "<p>The daemon has not run with this configuration yet (no journal).</p>"))
            }
            return html(ReviewPages.page("Overview", user: s.user, csrf: s.csrf, body: ReviewPages.overview(status)))
        }
        router.get("/studies") { request, context in
            let s = try context.session()
            let p = request.uri.queryParameters
            var q = ReviewPages.ListQuery()
            if let sort = p.get("sort"), ReviewPages.columns.contains(where: { $0.key == sort }) { q.sort = sort }
            q.descending = p.get("dir") != "asc"
            q.text = String((p.get("q") ?? "").prefix(200))
            q.state = p.get("state").flatMap(StudyState.init(rawValue:))
            q.reviewOnly = p.get("review") == "yes"
            let rows = try data.studies()
            let shown = ReviewPages.select(rows, q)
            return html(ReviewPages.page("Studies", user: s.user, csrf: s.csrf, body: ReviewPages.studies(shown, total: rows.count, query: q)))
        }
        router.get("/studies/:id") { _, context in
            let s = try context.session()
            let row = try study(data, context)
            let files = ReviewData.servable.keys.sorted().filter { !$0.hasPrefix("slices_") && !$0.hasPrefix("contours_") && data.outputFile(row.record, $0) != nil }
            let body = ReviewPages.study(
                row, slices: data.sliceIndex(row.record), hasQC: data.outputFile(row.record, "qc.png") != nil, files: files)
            return html(ReviewPages.page("Study \(row.record.outputName)", user: s.user, csrf: s.csrf, body: body))
        }
        router.get("/studies/:id/files/:name") { _, context in
            _ = try context.session()
            let row = try study(data, context)
            guard let name = context.parameters.get("name"), let type = ReviewData.servable[name],
                  let path = data.outputFile(row.record, name), let bytes = FileManager.default.contents(atPath: path)
            else { throw HTTPError(.notFound, message: "no such file for this study") }
            var headers: HTTPFields = [.contentType: type]
            if !type.hasPrefix("image/") { headers[.contentDisposition] = "attachment; filename=\"\(row.record.id)-\(name)\"" }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("/suggest") { request, context in
            let s = try context.session()
            let count = min(50, max(1, request.uri.queryParameters.get("count", as: Int.self) ?? 5))
            let picks = Suggestions.pick((try? data.suggestionCandidates()) ?? [], count: count)
            return html(ReviewPages.page("Annotate next", user: s.user, csrf: s.csrf, body: ReviewPages.suggestions(picks)))
        }
        router.get("/studies/:id/input") { _, context in
            _ = try context.session()
            let row = try study(data, context)
            guard row.record.state == .done, let zip = try data.inputArchive(row.record) else {
                throw HTTPError(.notFound, message: "this study's input is not in the archive (inbox.delete_inputs, or not done)")
            }
            return Response(status: .ok, headers: [.contentType: "application/zip", .contentDisposition: "attachment; filename=\"\(row.record.id)-input.zip\""],
                            body: .init(byteBuffer: ByteBuffer(bytes: zip)))
        }
        router.get("/models") { _, context in
            let s = try context.session()
            let m = data.models()
            let refits = (try? data.openJournal().refits()) ?? []
            let serving = ServiceStatus.servingHead(config: config)
            return html(ReviewPages.page("Models", user: s.user, csrf: s.csrf, body: ReviewPages.models(
                versions: m.versions, current: m.current, error: m.error, refits: refits, csrf: s.csrf, serving: serving)))
        }
        router.post("/models/promote") { request, context in
            var request = request
            let (form, s) = try await checkedForm(PromoteForm.self, &request, context)
            let store = try ModelStore(root: config.modelsPath)
            guard try store.versions().contains(form.version) else { throw HTTPError(.badRequest, message: "no version \(form.version) in the store") }
            do {
                try store.promote(form.version, encoder: nil, reason: "manual (review page, user \(s.user))")
            } catch {
                throw HTTPError(.conflict, message: "\(error)")
            }
            try Service.openJournal(config).recordAction(user: s.user, action: "promote", detail: form.version)
            return redirect("/models")
        }
        router.post("/models/rollback") { request, context in
            var request = request
            let (_, s) = try await checkedForm(ActionForm.self, &request, context)
            let store = try ModelStore(root: config.modelsPath)
            let now: String?
            do { now = try store.rollback() } catch { throw HTTPError(.conflict, message: "\(error)") }
            try Service.openJournal(config).recordAction(user: s.user, action: "rollback", detail: "now \(now ?? "the embedded default")")
            return redirect("/models")
        }

        let (host, port) = config.webHostPort
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "autosam"),
            onServerRunning: { channel in onRunning?(channel.localAddress?.port ?? port) })
    }

    // MARK: helpers

    struct LoginForm: Decodable { var user: String; var password: String }
    struct ActionForm: Decodable { var csrf: String }
    struct PromoteForm: Decodable { var csrf: String; var version: String }

    static func study(_ data: ReviewData, _ context: ReviewContext) throws -> StudyRow {
        guard let id = context.parameters.get("id", as: Int64.self), let row = try data.study(id) else {
            throw HTTPError(.notFound, message: "no such study")
        }
        return row
    }

    static func decodeForm<T: Decodable>(_ type: T.Type, _ request: inout Request) async throws -> T {
        let body = try await request.collectBody(upTo: 16 * 1024)
        do { return try URLEncodedFormDecoder().decode(T.self, from: String(buffer: body)) } catch {
            throw HTTPError(.badRequest, message: "the form is incomplete")
        }
    }

    /// A state-changing form: logged in, and carrying the session's CSRF token.
    static func checkedForm<T: Decodable & CSRFCarrying>(_ type: T.Type, _ request: inout Request, _ context: ReviewContext) async throws -> (T, WebSession) {
        let s = try context.session()
        let form = try await decodeForm(T.self, &request)
        guard constantTimeEqual(form.csrf, s.csrf) else { throw HTTPError(.forbidden, message: "the form's token is missing or wrong; reload the page") }
        return (form, s)
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var d: UInt8 = 0
        for i in 0..<x.count { d |= x[i] ^ y[i] }
        return d == 0
    }

    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

    static func html(_ s: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    static func text(_ s: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    static func redirect(_ to: String) -> Response {
        Response(status: .seeOther, headers: [.location: to])
    }
}

protocol CSRFCarrying { var csrf: String { get } }
extension ReviewServer.ActionForm: CSRFCarrying {}
extension ReviewServer.PromoteForm: CSRFCarrying {}

extension ReviewContext {
    func session() throws -> WebSession {
        guard let s = sessions.session else { throw HTTPError(.unauthorized, message: "log in first") }
        return s
    }
}

/// Everything but the log-in page and the style and script needs a session: a page request
/// without one is sent to the log-in page, anything else refused. A request that says it comes
/// from another site (Origin) is refused before anything else. Each request renews the session.
struct RequireLogin: RouterMiddleware {
    typealias Context = ReviewContext
    let sessionLength: Duration

    func handle(_ request: Request, context: ReviewContext, next: (Request, ReviewContext) async throws -> Response) async throws -> Response {
        if request.method != .get && request.method != .head {
            if let origin = request.headers[.origin], origin != "http://\(request.head.authority ?? "")" && origin != "https://\(request.head.authority ?? "")" {
                throw HTTPError(.forbidden, message: "cross-site request refused")
            }
        }
        let path = request.uri.path
        if path == "/login" || path.hasPrefix("/static/") { return try await next(request, context) }
        guard let s = context.sessions.session else {
            if request.method == .get && !path.contains("/files/") { return ReviewServer.redirect("/login") }
            throw HTTPError(.unauthorized, message: "log in first")
        }
        _ = context.sessions.updateSession(s, expiresIn: sessionLength)
        return try await next(request, context)
    }
}

/// The same security headers on every answer, errors included; errors answer plain text and
/// never carry internal detail beyond their message.
struct SecurityHeaders<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let e as HTTPError {
            response = Response(status: e.status, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: (e.body ?? e.status.reasonPhrase) + "\n")))
        } catch {
            context.logger.error("request failed: \(error)")
            response = Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: .init(byteBuffer: ByteBuffer(string: "internal error\n")))
        }
        let h: [(String, String)] = [
            ("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
            ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"),
            ("Cache-Control", "no-store"), ("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Resource-Policy", "same-origin"),
        ]
        for (name, value) in h { response.headers[HTTPField.Name(name)!] = value }
        return response
    }
}
