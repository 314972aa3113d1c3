import AutoSAM
import Tensor
import CardiacImaging
import Foundation
import TOMLKit

/// A configuration problem, named precisely enough to fix: the key, the value, what is wanted.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Which frames of a cine are segmented.
public enum FrameSelection: String, Sendable, Codable {
    /// ED and ES only (from Info.cfg when given, else by the LV volume curve).
    case edES = "ed_es"
    /// Every frame; ED and ES are picked from the LV volume curve unless Info.cfg names them.
    case all
}

public enum LogLevel: String, Sendable, Codable, Comparable {
    case debug, info, warning, error
    var rank: Int { [LogLevel.debug, .info, .warning, .error].firstIndex(of: self)! }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

/// The daemon's settings (`autosam watch --config FILE.toml`). Every key has a default; the
/// file `Config/autosam.toml` documents them all. An environment variable
/// `AUTOSAM_<SECTION>_<KEY>` (upper case, e.g. `AUTOSAM_INBOX_QUIET_PERIOD_S`) overrides a key.
public struct ServiceConfig: Sendable {
    // [paths]: relative paths resolve against `data`.
    public var data = "/var/lib/autosam"
    public var inbox = "inbox"
    public var outbox = "outbox"
    public var archive = "archive"
    public var failed = "failed"
    public var labels = "labels"
    public var models = "models"
    /// Claimed studies while they are processed; must be on the inbox's file system.
    public var work = "work"
    public var cache = "cache"
    /// Labelled volumes the refits learn from, and the fixed validation pool.
    public var training = "training"
    public var journal = "journal.sqlite"

    // [model]
    /// "demo" (the seeded random-weight encoder of the embedded default head), "litemedsam" (the
    /// fetched LiteMedSAM checkpoint), a SAM checkpoint path, or another registered size name.
    public var encoder = "demo"
    /// A head folder to serve when the model store has no current version; empty: the
    /// embedded default head.
    public var head = ""
    public var precision: Precision = .fp32

    // [inbox]
    public var quietPeriod: Double = 30
    public var marker = ".ready"
    public var pollInterval: Double = 2
    public var deleteInputs = false
    public var maxAttempts = 3
    public var retryBackoff: Double = 60
    public var retryBackoffMax: Double = 3600

    // [segmentation]
    public var frames = FrameSelection.edES
    /// A study whose uncertainty (entropy per heart pixel, ED/ES's largest) is above this is
    /// flagged for review in stats.json, cohort.csv, provenance and the log.
    public var reviewUncertainty = 0.12

    // [series_rules]
    public var seriesRules = SeriesRules.default

    // [refit]
    public var refitEnabled = true
    public var refitEveryVolumes = 1
    /// Hours between scheduled refits when new labelled volumes arrived (0: off).
    public var refitIntervalHours: Double = 0
    /// A candidate is promoted unless its validation Dice is below the current head's by more.
    public var refitTolerance = 0.01
    public var refitEpochs = 60
    /// Fewest training samples per refit epoch (0: one view per slice).
    public var refitEpochSamples = TrainingOptions.fewShotEpochSamples
    /// Labelled volumes kept aside as the fixed validation pool (the first ones received).
    public var refitValidationVolumes = 1

    // [log]
    public var logLevel = LogLevel.info

    // [pacs]
    /// Where the DICOM results (SEG, SR, QC picture) of DICOM studies are sent by C-STORE,
    /// each written `AE@host:port`; none: nothing is sent.
    public var pacsDestinations: [DicomDestination] = []
    public var pacsCallingAE = "AUTOSAM"
    public var pacsTimeout: Double = 30
    public var pacsRetryBackoff: Double = 30
    public var pacsRetryBackoffMax: Double = 3600
    /// For `tls:` destinations: the certificates trusted (PEM), and our own certificate and
    /// unencrypted private key (PEM) when the peer asks for one.
    public var pacsTLSTrusted = ""
    public var pacsTLSCertificate = ""
    public var pacsTLSPrivateKey = ""
    public var pacsTLS: DicomTLSFiles? {
        pacsTLSTrusted.isEmpty ? nil : DicomTLSFiles(
            trustedCertificates: pacsTLSTrusted, certificate: pacsTLSCertificate.isEmpty ? nil : pacsTLSCertificate,
            privateKey: pacsTLSPrivateKey.isEmpty ? nil : pacsTLSPrivateKey)
    }

    // [queue]
    /// "sqlite" (the journal in the data folder; one daemon per data folder) or "postgres"
    /// (several workers share one queue in PostgreSQL; docs/DEPLOYMENT.md).
    public var queueBackend = "sqlite"
    /// PostgreSQL's host name or address, or the folder of its Unix socket (a path).
    public var queueHost = "localhost"
    public var queuePort = 5432
    public var queueDatabase = "autosam"
    public var queueUser = "autosam"
    /// The password: better in the environment (AUTOSAM_QUEUE_PASSWORD) or a file
    /// (`password_file`, readable by the service alone) than in the configuration. Never logged.
    public var queuePassword = ""
    public var queuePasswordFile = ""
    /// How long a worker's claim on a study lasts without renewal; it renews every third of it.
    /// A worker that dies loses its studies to the others after this long.
    public var queueLease: Double = 30
    /// This worker's name in the queue (default: host name and process id).
    public var queueWorker = ""
    /// TLS to a database reached over TCP: "prefer" (if the server offers it), "require"
    /// (the server's certificate checked against the system's trusted authorities and the host
    /// name), or "disable". Not used over a Unix socket.
    public var queueTLS = "prefer"
    /// Seconds a database statement may take before the connection is given up as lost.
    public var queueStatementTimeout: Double = 20
    public var usesPostgres: Bool { queueBackend == "postgres" }

    // [web]
    /// Where `autosam web` (the review page) listens, "host:port"; loopback by default.
    public var webListen = "127.0.0.1:8090"
    /// The users who may log in: one "name:bcrypt-hash" per line (`autosam web-user`).
    public var webUsers = "web-users"
    /// A session ends after this many minutes without a request.
    public var webSessionMinutes: Double = 30
    public var webUsersPath: String { path(webUsers) }
    /// `webListen` split into host and port (checked by `validate`).
    public var webHostPort: (host: String, port: Int) {
        let i = webListen.lastIndex(of: ":")!
        return (String(webListen[..<i]), Int(webListen[webListen.index(after: i)...])!)
    }

    // [service]
    /// The watchdog is fed only while the worker shows progress at least this often.
    public var stallLimit: Double = 900

    public init() {}

    /// Absolute path of a folder key.
    public func path(_ p: String) -> String {
        p.hasPrefix("/") ? p : (data as NSString).appendingPathComponent(p)
    }
    public var inboxPath: String { path(inbox) }
    public var outboxPath: String { path(outbox) }
    public var archivePath: String { path(archive) }
    public var failedPath: String { path(failed) }
    public var labelsPath: String { path(labels) }
    public var modelsPath: String { path(models) }
    public var workPath: String { path(work) }
    public var cachePath: String { path(cache) }
    public var trainingPath: String { path(training) }
    public var journalPath: String { path(journal) }

    // MARK: loading

    /// Every key: section, name, and how to apply a value to the configuration.
    fileprivate typealias Setter = @Sendable (inout ServiceConfig, ConfigValue) throws -> Void
    fileprivate static let keys: [(String, String, Setter)] = [
        ("paths", "data", { $0.data = try $1.string() }),
        ("paths", "inbox", { $0.inbox = try $1.string() }),
        ("paths", "outbox", { $0.outbox = try $1.string() }),
        ("paths", "archive", { $0.archive = try $1.string() }),
        ("paths", "failed", { $0.failed = try $1.string() }),
        ("paths", "labels", { $0.labels = try $1.string() }),
        ("paths", "models", { $0.models = try $1.string() }),
        ("paths", "work", { $0.work = try $1.string() }),
        ("paths", "cache", { $0.cache = try $1.string() }),
        ("paths", "training", { $0.training = try $1.string() }),
        ("paths", "journal", { $0.journal = try $1.string() }),
        ("model", "encoder", { $0.encoder = try $1.string() }),
        ("model", "head", { $0.head = try $1.string() }),
        ("model", "precision", { $0.precision = Precision(rawValue: try $1.oneOf(Precision.allCases.map(\.rawValue)))! }),
        ("inbox", "quiet_period_s", { $0.quietPeriod = try $1.double(min: 0) }),
        ("inbox", "marker", { $0.marker = try $1.string() }),
        ("inbox", "poll_interval_s", { $0.pollInterval = try $1.double(min: 0.05) }),
        ("inbox", "delete_inputs", { $0.deleteInputs = try $1.bool() }),
        ("inbox", "max_attempts", { $0.maxAttempts = try $1.int(min: 1) }),
        ("inbox", "retry_backoff_s", { $0.retryBackoff = try $1.double(min: 0) }),
        ("inbox", "retry_backoff_max_s", { $0.retryBackoffMax = try $1.double(min: 0) }),
        ("segmentation", "frames", { $0.frames = FrameSelection(rawValue: try $1.oneOf(["ed_es", "all"]))! }),
        ("segmentation", "review_uncertainty", { $0.reviewUncertainty = try $1.double(min: 0) }),
        ("series_rules", "prefer_descriptions", { $0.seriesRules.preferDescriptions = try $1.strings() }),
        ("series_rules", "avoid_descriptions", { $0.seriesRules.avoidDescriptions = try $1.strings() }),
        ("series_rules", "min_phases", { $0.seriesRules.minPhases = try $1.int(min: 1) }),
        ("series_rules", "min_slices", { $0.seriesRules.minSlices = try $1.int(min: 1) }),
        ("series_rules", "prefer_oblique", { $0.seriesRules.preferOblique = try $1.bool() }),
        ("series_rules", "pure_orientation_degrees", { $0.seriesRules.pureOrientationDegrees = try $1.double(min: 0) }),
        ("refit", "enabled", { $0.refitEnabled = try $1.bool() }),
        ("refit", "every_n_volumes", { $0.refitEveryVolumes = try $1.int(min: 0) }),
        ("refit", "interval_hours", { $0.refitIntervalHours = try $1.double(min: 0) }),
        ("refit", "tolerance", { $0.refitTolerance = try $1.double(min: 0) }),
        ("refit", "epochs", { $0.refitEpochs = try $1.int(min: 1) }),
        ("refit", "epoch_samples", {
            $0.refitEpochSamples = try $1.int(min: TrainingOptions.minimumEpochSamplesRange.lowerBound, max: TrainingOptions.minimumEpochSamplesRange.upperBound)
        }),
        ("refit", "validation_volumes", { $0.refitValidationVolumes = try $1.int(min: 1) }),
        ("log", "level", { $0.logLevel = LogLevel(rawValue: try $1.oneOf(["debug", "info", "warning", "error"]))! }),
        ("service", "stall_limit_s", { $0.stallLimit = try $1.double(min: 1) }),
        ("queue", "backend", { $0.queueBackend = try $1.oneOf(["sqlite", "postgres"]) }),
        ("queue", "host", { $0.queueHost = try $1.string() }),
        ("queue", "port", { $0.queuePort = try $1.int(min: 1, max: 65535) }),
        ("queue", "database", { $0.queueDatabase = try $1.string() }),
        ("queue", "user", { $0.queueUser = try $1.string() }),
        ("queue", "password", { $0.queuePassword = try $1.string() }),
        ("queue", "password_file", { $0.queuePasswordFile = try $1.string() }),
        ("queue", "lease_s", { $0.queueLease = try $1.double(min: 1) }),
        ("queue", "worker", { $0.queueWorker = try $1.string() }),
        ("queue", "tls", { $0.queueTLS = try $1.oneOf(["prefer", "require", "disable"]) }),
        ("queue", "statement_timeout_s", { $0.queueStatementTimeout = try $1.double(min: 1) }),
        ("web", "listen", { $0.webListen = try $1.string() }),
        ("web", "users_file", { $0.webUsers = try $1.string() }),
        ("web", "session_minutes", { $0.webSessionMinutes = try $1.double(min: 0.05) }),
        ("pacs", "destinations", { c, v in
            c.pacsDestinations = try v.strings().map { s in
                guard let d = DicomDestination(s) else { throw v.fail("a list of \"AE@host:port\" or \"tls:AE@host:port\" (AE title of 1...16 characters, port 1...65535)") }
                return d
            }
        }),
        ("pacs", "calling_ae", { c, v in
            let ae = try v.string()
            guard DicomDestination(ae + "@h:1") != nil else { throw v.fail("an AE title of 1...16 characters") }
            c.pacsCallingAE = ae
        }),
        ("pacs", "timeout_s", { $0.pacsTimeout = try $1.double(min: 1) }),
        ("pacs", "tls_trusted_certificates", { $0.pacsTLSTrusted = try $1.string() }),
        ("pacs", "tls_certificate", { $0.pacsTLSCertificate = try $1.string() }),
        ("pacs", "tls_private_key", { $0.pacsTLSPrivateKey = try $1.string() }),
        ("pacs", "retry_backoff_s", { $0.pacsRetryBackoff = try $1.double(min: 0) }),
        ("pacs", "retry_backoff_max_s", { $0.pacsRetryBackoffMax = try $1.double(min: 0) }),
    ]

    /// The environment variable that overrides a key.
    public static func environmentName(section: String, key: String) -> String {
        "AUTOSAM_" + section.uppercased() + "_" + key.uppercased()
    }

    /// Every key as `section.key`, for documentation checks.
    public static var allKeys: [String] { keys.map { "\($0.0).\($0.1)" } }

    /// Reads a TOML file (nil: defaults only), then applies environment overrides, then
    /// validates. Unknown sections or keys, wrong types and bad values are errors naming the key.
    public static func load(path: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ServiceConfig {
        var text = ""
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError("cannot read the configuration file \(path)")
            }
            guard let s = String(data: data, encoding: .utf8) else { throw ConfigError("\(path) is not UTF-8 text") }
            text = s
        }
        return try parse(text, source: path ?? "(defaults)", environment: environment)
    }

    public static func parse(_ text: String, source: String = "configuration", environment: [String: String] = [:]) throws -> ServiceConfig {
        // toml++ (inside TOMLKit) aborts the process on some malformed keys and table headers
        // ([ñbox], [=p), so the text's shape is checked here first (TOMLShape).
        if let problem = TOMLShape.firstProblem(text) {
            throw ConfigError("\(source): not valid TOML: \(problem.message) at line \(problem.line), column \(problem.column)")
        }
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let e as TOMLParseError {
            throw ConfigError("\(source): not valid TOML: \(e.description) at line \(e.source.begin.line), column \(e.source.begin.column)")
        }
        var config = ServiceConfig()
        let sections = Set(keys.map(\.0))
        for name in table.keys {
            guard sections.contains(name) else {
                throw ConfigError("\(source): unknown section [\(name)] (known: \(sections.sorted().joined(separator: ", ")))")
            }
            guard let sub = table[name]?.table else { throw ConfigError("\(source): '\(name)' must be a [section]") }
            let known = keys.filter { $0.0 == name }.map(\.1)
            for key in sub.keys {
                guard let setter = keys.first(where: { $0.0 == name && $0.1 == key })?.2 else {
                    throw ConfigError("\(source): unknown key '\(key)' in [\(name)] (known: \(known.joined(separator: ", ")))")
                }
                try setter(&config, ConfigValue(name: "\(name).\(key)", toml: sub[key]!, text: nil))
            }
        }
        for (section, key, setter) in keys {
            let env = environmentName(section: section, key: key)
            if let v = environment[env] { try setter(&config, ConfigValue(name: env, toml: nil, text: v)) }
        }
        try config.validate()
        return config
    }

    /// Checks relations between keys.
    public func validate() throws {
        guard data.hasPrefix("/") else { throw ConfigError("paths.data must be an absolute path, not '\(data)'") }
        let folders = [("inbox", inboxPath), ("outbox", outboxPath), ("archive", archivePath), ("failed", failedPath),
                       ("labels", labelsPath), ("models", modelsPath), ("work", workPath), ("cache", cachePath),
                       ("training", trainingPath)]
        for (name, p) in folders where p.isEmpty { throw ConfigError("paths.\(name) is empty") }
        var seen: [String: String] = [:]
        for (name, p) in folders {
            let norm = (p as NSString).standardizingPath
            if let other = seen[norm] { throw ConfigError("paths.\(name) and paths.\(other) are the same folder (\(norm))") }
            seen[norm] = name
        }
        let inboxNorm = (inboxPath as NSString).standardizingPath + "/"
        for (name, p) in folders where name != "inbox" && ((p as NSString).standardizingPath + "/").hasPrefix(inboxNorm) {
            throw ConfigError("paths.\(name) (\(p)) must not lie inside the inbox: it would be taken for a study")
        }
        guard !marker.isEmpty, !marker.contains("/") else { throw ConfigError("inbox.marker must be a plain file name, not '\(marker)'") }
        guard retryBackoffMax >= retryBackoff else {
            throw ConfigError("inbox.retry_backoff_max_s (\(retryBackoffMax)) is below inbox.retry_backoff_s (\(retryBackoff))")
        }
        if pacsDestinations.contains(where: \.tls) {
            guard !pacsTLSTrusted.isEmpty else { throw ConfigError("pacs.tls_trusted_certificates is needed for the tls: destinations") }
        }
        guard pacsTLSCertificate.isEmpty == pacsTLSPrivateKey.isEmpty else {
            throw ConfigError("pacs.tls_certificate and pacs.tls_private_key go together")
        }
        for (key, path) in [("tls_trusted_certificates", pacsTLSTrusted), ("tls_certificate", pacsTLSCertificate), ("tls_private_key", pacsTLSPrivateKey)]
        where !path.isEmpty && !FileManager.default.isReadableFile(atPath: path) {
            throw ConfigError("pacs.\(key): no readable file at '\(path)'")
        }
        guard pacsRetryBackoffMax >= pacsRetryBackoff else {
            throw ConfigError("pacs.retry_backoff_max_s (\(pacsRetryBackoffMax)) is below pacs.retry_backoff_s (\(pacsRetryBackoff))")
        }
        if let i = webListen.lastIndex(of: ":"), i != webListen.startIndex, let port = Int(webListen[webListen.index(after: i)...]), (1...65535).contains(port) {
        } else {
            throw ConfigError("web.listen must be \"host:port\" (e.g. \"127.0.0.1:8090\"), not '\(webListen)'")
        }
        guard !webUsers.isEmpty else { throw ConfigError("web.users_file is empty") }
        do { try seriesRules.validate() } catch { throw ConfigError("series_rules: \(error)") }
        let looksLikePath = encoder.contains("/") || encoder.contains(".")
        guard !encoder.isEmpty, !looksLikePath || FileManager.default.fileExists(atPath: encoder) else {
            throw ConfigError("model.encoder: no checkpoint file at '\(encoder)' (give a checkpoint path or a size name such as demo)")
        }
    }
}

/// One value from the TOML file or from an environment variable (text, parsed per type).
struct ConfigValue {
    var name: String
    var toml: TOMLValueConvertible?
    var text: String?

    func fail(_ wanted: String) -> ConfigError {
        let shown = text ?? toml.map { $0.debugDescription } ?? "?"
        return ConfigError("\(name) must be \(wanted), not \(shown)")
    }

    func string() throws -> String {
        if let text { return text }
        guard let s = toml?.string else { throw fail("a string") }
        return s
    }

    func bool() throws -> Bool {
        if let text {
            switch text.lowercased() {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: throw fail("true or false")
            }
        }
        guard let b = toml?.bool else { throw fail("true or false") }
        return b
    }

    func int(min: Int, max: Int = .max) throws -> Int {
        let v: Int?
        if let text { v = Int(text.trimmingCharacters(in: .whitespaces)) } else { v = toml?.int }
        guard let v, v >= min, v <= max else { throw fail(max == .max ? "a whole number >= \(min)" : "a whole number in \(min)...\(max)") }
        return v
    }

    func double(min: Double) throws -> Double {
        let v: Double?
        if let text { v = Double(text.trimmingCharacters(in: .whitespaces)) } else { v = toml?.double ?? toml?.int.map(Double.init) }
        guard let v, v.isFinite, v >= min else { throw fail("a number >= \(min)") }
        return v
    }

    func oneOf(_ allowed: [String]) throws -> String {
        let s = try string()
        guard allowed.contains(s) else { throw fail("one of " + allowed.map { "\"\($0)\"" }.joined(separator: ", ")) }
        return s
    }

    func strings() throws -> [String] {
        if let text {
            // An environment value is a JSON array of strings.
            guard let data = text.data(using: .utf8), let a = try? JSONDecoder().decode([String].self, from: data) else {
                throw fail("a JSON array of strings")
            }
            return a
        }
        guard let a = toml?.array else { throw fail("an array of strings") }
        return try a.map { v in
            guard let s = v.string else { throw fail("an array of strings") }
            return s
        }
    }
}
