import CardiacImaging
import Foundation

/// Why the model store refused an operation. Each case names the version or file concerned.
public enum ModelStoreError: Error, Equatable, CustomStringConvertible {
    case unknownVersion(String, available: [String])
    case emptyStore(String)
    case encoderMismatch(version: String, versionEncoder: String, expected: String)
    case corruptPointer(path: String, reason: String)
    case corruptMetrics(version: String, reason: String)
    case corruptModel(version: String, reason: String)
    case nothingToRollBackTo
    case ioFailure(String)

    public var description: String {
        switch self {
        case .unknownVersion(let v, let a):
            "no model version '\(v)' in the store" + (a.isEmpty ? " (it holds none)" : " (it holds \(a.joined(separator: ", ")))")
        case .emptyStore(let root): "the model store \(root) holds no versions"
        case .encoderMismatch(let v, let ve, let e):
            "model version \(v) was trained on encoder '\(ve)', not on '\(e)'"
        case .corruptPointer(let p, let r): "the current-version pointer \(p) is unusable: \(r)"
        case .corruptMetrics(let v, let r): "metrics.json of model version \(v) is unusable: \(r)"
        case .corruptModel(let v, let r): "model version \(v) cannot be loaded: \(r)"
        case .nothingToRollBackTo: "nothing to roll back to: no earlier model was current"
        case .ioFailure(let s): "model store: \(s)"
        }
    }
}

/// Dice (and ASSD in mm where defined) of one structure over a validation pool.
public struct ClassScore: Codable, Equatable, Sendable {
    public var label: UInt8
    public var name: String
    /// Mean over the pool's frames.
    public var dice: Double
    /// Mean over the frames where it is defined (nil when it never is).
    public var assd: Double?

    public init(label: UInt8, name: String, dice: Double, assd: Double?) {
        self.label = label
        self.name = name
        self.dice = dice
        self.assd = assd
    }
}

/// A head's scores on the fixed validation pool, on each frame's own grid.
public struct ValidationScore: Codable, Equatable, Sendable {
    public var classes: [ClassScore]
    /// Mean of the structures' Dice.
    public var meanDice: Double
    public var meanASSD: Double?
    /// Frames (ED/ES volumes) scored.
    public var frames: Int
    /// Mean Dice per pool frame ("case0001 frame 1": Dice), to see where a head fails.
    public var perFrame: [String: Double]

    public init(classes: [ClassScore], meanDice: Double, meanASSD: Double?, frames: Int, perFrame: [String: Double]) {
        self.classes = classes
        self.meanDice = meanDice
        self.meanASSD = meanASSD
        self.frames = frames
        self.perFrame = perFrame
    }
}

/// What the refit decided about a candidate: promoted, accepted (good enough, left for a person
/// to promote), rejected, or pending (the decision was not recorded, e.g. a crash).
public struct ModelDecision: Codable, Equatable, Sendable {
    public enum Status: String, Codable, Sendable { case promoted, accepted, rejected, pending }
    public var status: Status
    public var reason: String
    public var date: String

    public init(status: Status, reason: String, date: String) {
        self.status = status
        self.reason = reason
        self.date = date
    }
}

/// `metrics.json` of a version: how it was made, how it scored, what was decided, and every
/// later promotion or rollback.
public struct ModelMetrics: Codable, Equatable, Sendable {
    public struct Event: Codable, Equatable, Sendable {
        public var date: String
        /// "promoted" or "rolled back".
        public var action: String
        public var detail: String
    }

    /// Filled in by `ModelStore.add`.
    public var version: String
    public var created: String
    /// The version it was trained from (nil: the embedded default head).
    public var parent: String?
    public var encoder: String
    public var headKind: HeadKind
    /// Training store case ids and the number of labelled frames they hold.
    public var trainingCases: [String]
    public var trainingVolumes: Int
    /// The fixed validation pool the scores are on.
    public var validationCases: [String]
    public var validation: ValidationScore?
    /// The head that was current at decision time, scored on the same pool.
    public var parentValidation: ValidationScore?
    /// Promotion rule: candidate mean Dice >= current mean Dice - tolerance.
    public var tolerance: Double?
    public var epochs: Int?
    public var trainingSeconds: Double?
    public var decision: ModelDecision
    public var events: [Event]

    public init(
        created: String, parent: String?, encoder: String, headKind: HeadKind, trainingCases: [String], trainingVolumes: Int,
        validationCases: [String], validation: ValidationScore?, parentValidation: ValidationScore?, tolerance: Double?,
        epochs: Int?, trainingSeconds: Double?, decision: ModelDecision
    ) {
        version = ""
        self.created = created
        self.parent = parent
        self.encoder = encoder
        self.headKind = headKind
        self.trainingCases = trainingCases
        self.trainingVolumes = trainingVolumes
        self.validationCases = validationCases
        self.validation = validation
        self.parentValidation = parentValidation
        self.tolerance = tolerance
        self.epochs = epochs
        self.trainingSeconds = trainingSeconds
        self.decision = decision
        events = []
    }
}

/// A head loaded from the store, with the version it came from.
public struct StoredModel {
    public var version: String
    public var head: SegmentationHead
    public var metadata: HeadMetadata
}

/// Every head version, kept: `<root>/v0001/`, `v0002/`, ... each a head folder as
/// `HeadModel.save` writes it plus `metrics.json`; `<root>/current` names the version in use.
///
/// `current` is JSON `{"version": "v0003", "history": [null, "v0001"], "updated": ...}`, written
/// to a temporary file and renamed over the old one, so a reader sees the old or the new
/// pointer, never a mixture. `history` is the stack of earlier current versions (null: the
/// embedded default) that `rollback` returns to. No pointer file: no version is current and the
/// caller serves the embedded default head. A version is added in a hidden staging folder and
/// renamed into place once complete; folders without all three files are not versions.
public struct ModelStore {
    public let root: String

    struct Pointer: Codable, Equatable {
        var version: String?
        var history: [String?]
        var updated: String
    }

    /// Opens (creating if needed) the store folder.
    public init(root: String) throws {
        self.root = root
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw ModelStoreError.ioFailure("cannot create \(root): \(error.localizedDescription)")
        }
    }

    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    static func isVersionName(_ s: String) -> Bool {
        s.count >= 5 && s.first == "v" && s.dropFirst().allSatisfy { $0.isASCII && $0.isNumber }
    }

    public var pointerPath: String { root + "/current" }

    public func path(of version: String) -> String { root + "/" + version }

    /// Complete versions, oldest first.
    public func versions() throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: root) } catch {
            throw ModelStoreError.ioFailure("cannot list \(root): \(error.localizedDescription)")
        }
        let fm = FileManager.default
        return names.filter { name in
            Self.isVersionName(name)
                && ["head.safetensors", "model.json", "metrics.json"].allSatisfy { fm.fileExists(atPath: root + "/" + name + "/" + $0) }
        }.sorted { Int($0.dropFirst())! < Int($1.dropFirst())! }
    }

    func requireVersion(_ version: String) throws {
        let all = try versions()
        guard all.contains(version) else { throw ModelStoreError.unknownVersion(version, available: all) }
    }

    func readPointer() throws -> Pointer? {
        guard let data = FileManager.default.contents(atPath: pointerPath) else { return nil }
        let p: Pointer
        do { p = try JSONDecoder().decode(Pointer.self, from: data) } catch {
            throw ModelStoreError.corruptPointer(path: pointerPath, reason: "not the expected JSON (\(Self.describe(error)))")
        }
        let all = try versions()
        for v in [p.version] + p.history {
            if let v, !all.contains(v) {
                throw ModelStoreError.corruptPointer(path: pointerPath, reason: "it names \(v), which is not in the store")
            }
        }
        return p
    }

    func writePointer(_ p: Pointer) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try AtomicFile.write(try enc.encode(p), to: pointerPath) } catch {
            throw ModelStoreError.ioFailure("cannot write \(pointerPath): \(error)")
        }
    }

    /// The current version, or nil when none is (serve the embedded default). With `encoder`,
    /// throws `encoderMismatch` if the current version was trained on another encoder.
    public func current(encoder: String? = nil) throws -> String? {
        guard let v = try readPointer()?.version else { return nil }
        if let encoder {
            let m = try metrics(v)
            guard m.encoder == encoder else {
                throw ModelStoreError.encoderMismatch(version: v, versionEncoder: m.encoder, expected: encoder)
            }
        }
        return v
    }

    /// The current head loaded, or nil when none is current.
    public func currentModel(encoder: String? = nil) throws -> StoredModel? {
        guard let v = try current(encoder: encoder) else { return nil }
        return try load(v)
    }

    public func load(_ version: String) throws -> StoredModel {
        try requireVersion(version)
        do {
            let (head, meta) = try HeadModel.load(path(of: version))
            return StoredModel(version: version, head: head, metadata: meta)
        } catch {
            throw ModelStoreError.corruptModel(version: version, reason: Self.describe(error))
        }
    }

    public func metrics(_ version: String) throws -> ModelMetrics {
        try requireVersion(version)
        let file = path(of: version) + "/metrics.json"
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ModelStoreError.corruptMetrics(version: version, reason: "cannot read \(file)")
        }
        do { return try JSONDecoder().decode(ModelMetrics.self, from: data) } catch {
            throw ModelStoreError.corruptMetrics(version: version, reason: Self.describe(error))
        }
    }

    func writeMetrics(_ m: ModelMetrics, into dir: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try AtomicFile.write(try enc.encode(m), to: dir + "/metrics.json") } catch {
            throw ModelStoreError.ioFailure("cannot write \(dir)/metrics.json: \(error)")
        }
    }

    /// Adds a head as the next version (not made current) and returns its name. The metrics'
    /// `version` is filled in; the encoder must be the head metadata's.
    @discardableResult
    public func add(head: SegmentationHead, metadata: HeadMetadata, metrics: ModelMetrics) throws -> String {
        guard metrics.encoder == metadata.encoder else {
            throw ModelStoreError.encoderMismatch(version: "(new)", versionEncoder: metadata.encoder, expected: metrics.encoder)
        }
        let staging = root + "/.staging-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        do { try HeadModel.save(head, metadata: metadata, to: staging) } catch {
            throw ModelStoreError.ioFailure("cannot save the head: \(Self.describe(error))")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var number = (names.filter(Self.isVersionName).compactMap { Int($0.dropFirst()) }.max() ?? 0) + 1
        for _ in 0..<20 {
            let name = String(format: "v%04d", number)
            var m = metrics
            m.version = name
            try writeMetrics(m, into: staging)
            // Never replace an existing folder (rename would replace an empty one).
            if !FileManager.default.fileExists(atPath: path(of: name)) {
                if rename(staging, path(of: name)) == 0 { return name }
                if errno != EEXIST && errno != ENOTEMPTY {
                    throw ModelStoreError.ioFailure("cannot move the new version into \(path(of: name)): \(String(cString: strerror(errno)))")
                }
            }
            number += 1
        }
        throw ModelStoreError.ioFailure("no free version name after v\(number)")
    }

    func appendEvent(_ version: String, action: String, detail: String) throws {
        var m = try metrics(version)
        m.events.append(.init(date: Self.now(), action: action, detail: detail))
        try writeMetrics(m, into: path(of: version))
    }

    /// Records the automatic decision on a version (`add` stores the candidate's first).
    public func record(decision: ModelDecision, for version: String) throws {
        var m = try metrics(version)
        m.decision = decision
        try writeMetrics(m, into: path(of: version))
    }

    /// Makes `version` current; the one it replaces goes on the rollback history. With
    /// `encoder` (else: the current version's encoder, if any) a version trained on another
    /// encoder is refused. Promoting the current version changes nothing.
    public func promote(_ version: String, encoder: String? = nil, reason: String = "manual") throws {
        try requireVersion(version)
        let p = try readPointer() ?? Pointer(version: nil, history: [], updated: Self.now())
        guard p.version != version else { return }
        let m = try metrics(version)
        let expected = try encoder ?? p.version.map { try metrics($0).encoder }
        if let expected, m.encoder != expected {
            throw ModelStoreError.encoderMismatch(version: version, versionEncoder: m.encoder, expected: expected)
        }
        try writePointer(Pointer(version: version, history: p.history + [p.version], updated: Self.now()))
        try appendEvent(version, action: "promoted", detail: reason)
    }

    /// Returns to the version that was current before the present one (nil: the embedded
    /// default) and returns it. Throws `emptyStore` for a store without versions and
    /// `nothingToRollBackTo` when no earlier version was ever current.
    @discardableResult
    public func rollback() throws -> String? {
        guard !(try versions()).isEmpty else { throw ModelStoreError.emptyStore(root) }
        guard let p = try readPointer(), !p.history.isEmpty else { throw ModelStoreError.nothingToRollBackTo }
        let target = p.history.last!
        try writePointer(Pointer(version: target, history: Array(p.history.dropLast()), updated: Self.now()))
        if let old = p.version { try appendEvent(old, action: "rolled back", detail: "replaced by \(target ?? "the embedded default")") }
        return target
    }

    static func describe(_ error: Error) -> String { String(describing: error) }
}
