import ArgumentParser
import Foundation
import Review
import Service

struct WebCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web",
        abstract: "Serve the review page: queue, studies with their numbers, slices and QC picture, models and refits (behind a login).",
        discussion: """
            Reads the service's journal and outbox (the daemon's configuration file) and never \
            writes them, but for a promotion or roll-back a logged-in user asks for. Listens on \
            web.listen (loopback by default); users come from web.users_file (`autosam web-user`).
            """)

    @Option(help: "Configuration file (TOML) of the service.") var config: String?

    /// The command line stays synchronous (an async main would start the concurrency runtime's
    /// threads before `watch` installs its signal handling); the server runs in a task this
    /// thread waits for.
    func run() throws {
        let cfg: ServiceConfig
        do { cfg = try ServiceConfig.load(path: config) } catch let e as ConfigError { throw ValidationError(e.description) }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await ReviewServer.run(config: cfg) { port in
                    FileHandle.standardError.write(Data("autosam web: listening on \(cfg.webHostPort.host):\(port)\n".utf8))
                }
            } catch {
                outcome.error = error
            }
            done.signal()
        }
        done.wait()
        if let e = outcome.error as? WebUsers.Problem { throw ValidationError(e.description) }
        if let e = outcome.error { throw e }
    }

    final class Outcome: @unchecked Sendable {
        var error: Error?
    }
}

struct WebUserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "web-user",
        abstract: "Add a review-page user or change a password (read from standard input; stored as a bcrypt hash in web.users_file).")

    @Option(help: "Configuration file (TOML) of the service.") var config: String?
    @Argument(help: "The user name (letters, digits, . _ -).") var name: String

    func run() throws {
        let cfg: ServiceConfig
        do { cfg = try ServiceConfig.load(path: config) } catch let e as ConfigError { throw ValidationError(e.description) }
        guard let line = readLine(strippingNewline: true) else { throw ValidationError("give the password on standard input") }
        do { try WebUsers.set(name: name, password: line, in: cfg.webUsersPath) } catch let e as WebUsers.Problem {
            throw ValidationError(e.description)
        }
        print("\(name) can log in (\(cfg.webUsersPath))")
    }
}

struct SuggestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suggest",
        abstract: "The done studies to annotate next: the most uncertain, kept diverse (reads the journal and outbox).")

    @Option(help: "Configuration file (TOML) of the service.") var config: String?
    @Option(help: "How many to suggest.") var count = 5
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let cfg: ServiceConfig
        do { cfg = try ServiceConfig.load(path: config) } catch let e as ConfigError { throw ValidationError(e.description) }
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        let picks = Suggestions.pick(try Suggestions.candidates(config: cfg), count: count)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(picks), as: UTF8.self))
            return
        }
        if picks.isEmpty { print("no done study with an uncertainty that is not labelled yet") }
        for (n, p) in picks.enumerated() {
            let apart = p.distance.map { String(format: "%.2f from the nearest suggested before it", $0) } ?? "the most uncertain"
            print(String(format: "%d. #%lld %@  uncertainty %.3f  (%@)", n + 1, p.candidate.id, p.candidate.name, p.candidate.uncertainty, apart))
        }
    }
}
