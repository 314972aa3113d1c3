import ArgumentParser
import CardiacImaging
import Foundation
import Service

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Run the clinical service: segment the studies dropped into the inbox, refit on labelled volumes.",
        discussion: """
            Settings come from the TOML file (Config/autosam.toml documents every key and its default); \
            AUTOSAM_<SECTION>_<KEY> environment variables override keys. Under systemd (Type=notify) \
            the daemon reports READY, STATUS and WATCHDOG; SIGTERM stops it after, or by safely \
            abandoning, the current study.
            """)

    @Option(help: "Configuration file (TOML).") var config: String?
    @Flag(help: "Check the configuration, print it, and exit.") var check = false

    func run() throws {
        let cfg: ServiceConfig
        do { cfg = try ServiceConfig.load(path: config) } catch let e as ConfigError {
            throw ValidationError(e.description)
        }
        if check {
            print(cfg.summary)
            return
        }
        let daemon = try ServiceDaemon(config: cfg)
        daemon.installSignalHandlers()
        try daemon.run()
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The service's queue, done and failed counts, recent timings, model version and last refit (reads the journal; safe while the daemon runs).")

    @Option(help: "Configuration file (TOML) of the service.") var config: String?
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Print one count only, as a bare number (for scripts): inbox, queued, retrying, processing, done, failed, finished (done + failed).")
    var count: StatusCount?

    enum StatusCount: String, ExpressibleByArgument, CaseIterable {
        case inbox, queued, retrying, processing, done, failed, finished
    }

    func run() throws {
        let cfg: ServiceConfig
        do { cfg = try ServiceConfig.load(path: config) } catch let e as ConfigError {
            throw ValidationError(e.description)
        }
        let report = try ServiceStatus.read(config: cfg)
        if let count {
            let value = switch count {
            case .inbox: report.inboxWaiting
            case .queued: report.queued
            case .retrying: report.retrying
            case .processing: report.processing
            case .done: report.done
            case .failed: report.failed
            case .finished: report.done + report.failed
            }
            print(value)
        } else if json {
            print(String(decoding: try report.jsonData(), as: UTF8.self))
        } else {
            print(report.text)
        }
    }
}
