import CardiacImaging
import Foundation
import NN
import Tensor

/// Why a refit or the training store refused to go on.
public enum RefitError: Error, Equatable, CustomStringConvertible {
    case corruptPool(path: String, reason: String)
    case corruptCase(id: String, reason: String)
    case invalidCase(String)
    case invalidOptions(String)

    public var description: String {
        switch self {
        case .corruptPool(let p, let r): "the validation pool file \(p) is unusable: \(r)"
        case .corruptCase(let id, let r): "training case \(id) is unusable: \(r)"
        case .invalidCase(let s): "labelled volume refused: \(s)"
        case .invalidOptions(let s): "refit options: \(s)"
        }
    }
}

/// One labelled case of the training store: an ACDC-layout folder (`Info.cfg`,
/// `<id>_frameNN.nii.gz`, `<id>_frameNN_gt.nii.gz`) plus `case.json`.
public struct LabelledCase: Codable, Equatable, Sendable {
    public var id: String
    /// 1-based frame numbers of ED and ES (equal for a single labelled frame).
    public var ed: Int
    public var es: Int
    public var added: String
    /// Where it came from, as the caller described it (kept here only, never logged).
    public var source: String
}

/// The fixed validation pool: chosen once, at the first refit that runs, and never changed.
public struct ValidationPool: Codable, Equatable, Sendable {
    public var cases: [String]
    public var frozen: String
}

/// The labelled volumes refits learn from: `<root>/cases/case0001/` ... (ACDC layout, so the
/// training code reads them like any ACDC patient) and `<root>/pool.json`, the validation pool.
///
/// Until the first refit runs, the pool is the first `validationPoolSize` cases (in arrival
/// order); that refit writes it to `pool.json` and from then on it is fixed: later cases always
/// train, whatever `validationPoolSize` later says. A case is staged in a hidden folder and
/// renamed into place complete.
public struct TrainingStore {
    public let root: String
    public let validationPoolSize: Int

    public init(root: String, validationPoolSize: Int = 1) throws {
        guard validationPoolSize >= 1 else { throw RefitError.invalidOptions("the validation pool needs at least one case") }
        self.root = root
        self.validationPoolSize = validationPoolSize
        do { try FileManager.default.createDirectory(atPath: root + "/cases", withIntermediateDirectories: true) } catch {
            throw RefitError.invalidOptions("cannot create \(root)/cases: \(error.localizedDescription)")
        }
    }

    public var poolPath: String { root + "/pool.json" }
    public func folder(of id: String) -> String { root + "/cases/" + id }

    static func isCaseName(_ s: String) -> Bool {
        s.count >= 8 && s.hasPrefix("case") && s.dropFirst(4).allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// Complete cases in arrival order.
    public func cases() throws -> [LabelledCase] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root + "/cases")) ?? []
        return try names.filter(Self.isCaseName).sorted { Int($0.dropFirst(4))! < Int($1.dropFirst(4))! }.compactMap { id in
            guard let data = FileManager.default.contents(atPath: folder(of: id) + "/case.json") else { return nil }
            do { return try JSONDecoder().decode(LabelledCase.self, from: data) } catch {
                throw RefitError.corruptCase(id: id, reason: "case.json: \(ModelStore.describe(error))")
            }
        }
    }

    /// Adds a labelled case: the ED frame and, if given, the ES frame, each an image with its
    /// label map. Each map must lie on its image's grid with values 0...3; frames are 3D with
    /// at least two slices. Returns the new case.
    @discardableResult
    public func add(ed: (image: Volume, labels: LabelMap), es: (image: Volume, labels: LabelMap)? = nil, source: String) throws -> LabelledCase {
        let frames = [ed] + (es.map { [$0] } ?? [])
        for (n, f) in frames.enumerated() {
            let name = n == 0 ? "ED" : "ES"
            guard f.image.shape.nt == 1 else { throw RefitError.invalidCase("the \(name) image has \(f.image.shape.nt) frames; give one 3D frame") }
            guard f.image.shape.nz >= 2 else { throw RefitError.invalidCase("the \(name) image has \(f.image.shape.nz) slice(s); at least 2 are needed") }
            do {
                try f.labels.validate(against: f.image)
                try f.labels.validate(maxClass: 3)
            } catch let e as ImagingError { throw RefitError.invalidCase("\(name): \(e.description)") }
        }
        let staging = root + "/cases/.staging-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: root + "/cases")) ?? []
        var number = (existing.filter(Self.isCaseName).compactMap { Int($0.dropFirst(4)) }.max() ?? 0) + 1
        for _ in 0..<20 {
            let id = String(format: "case%04d", number)
            // File names carry the case id (ACDC layout), so write them per attempt.
            for f in (try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? [] { try? FileManager.default.removeItem(atPath: staging + "/" + f) }
            for (n, f) in frames.enumerated() {
                let stem = staging + "/" + ACDCPatient.frameName(id, frame: n + 1)
                try NIfTI.write(f.image, to: stem + ".nii.gz")
                try NIfTI.write(f.labels, to: stem + "_gt.nii.gz")
            }
            let info = ACDCInfo(ed: 1, es: frames.count, group: "labelled", heightCm: nil, weightKg: nil, frameCount: frames.count)
            try AtomicFile.write(info.text, to: staging + "/Info.cfg")
            let c = LabelledCase(id: id, ed: 1, es: frames.count, added: ModelStore.now(), source: source)
            try AtomicFile.write(try JSONEncoder().encode(c), to: staging + "/case.json")
            if !FileManager.default.fileExists(atPath: folder(of: id)) {
                if rename(staging, folder(of: id)) == 0 { return c }
                if errno != EEXIST && errno != ENOTEMPTY {
                    throw RefitError.invalidCase("cannot move the case into \(folder(of: id)): \(String(cString: strerror(errno)))")
                }
            }
            number += 1
        }
        throw RefitError.invalidCase("no free case name after case\(number)")
    }

    /// The frozen pool, or nil before the first refit.
    public func frozenPool() throws -> ValidationPool? {
        guard let data = FileManager.default.contents(atPath: poolPath) else { return nil }
        let pool: ValidationPool
        do { pool = try JSONDecoder().decode(ValidationPool.self, from: data) } catch {
            throw RefitError.corruptPool(path: poolPath, reason: "not the expected JSON (\(ModelStore.describe(error)))")
        }
        guard !pool.cases.isEmpty else { throw RefitError.corruptPool(path: poolPath, reason: "it names no case") }
        let ids = Set(try cases().map(\.id))
        if let missing = pool.cases.first(where: { !ids.contains($0) }) {
            throw RefitError.corruptPool(path: poolPath, reason: "it names \(missing), which is not in the store")
        }
        return pool
    }

    /// The validation pool ids: the frozen pool, or (before the first refit) the first
    /// `validationPoolSize` cases.
    public func validationCases() throws -> [String] {
        if let p = try frozenPool() { return p.cases }
        return Array(try cases().prefix(validationPoolSize).map(\.id))
    }

    /// Fixes the pool (a no-op once fixed) and returns it.
    @discardableResult
    func freezePool() throws -> ValidationPool {
        if let p = try frozenPool() { return p }
        let pool = ValidationPool(cases: try validationCases(), frozen: ModelStore.now())
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(pool), to: poolPath)
        return pool
    }

    func patient(_ id: String) throws -> ACDCPatient {
        do { return try ACDCPatient(folder: folder(of: id)) } catch {
            throw RefitError.corruptCase(id: id, reason: ModelStore.describe(error))
        }
    }
}

/// A head and the version it came from (nil: the embedded default, not in the store).
public struct VersionedHead {
    public var version: String?
    public var head: SegmentationHead
    public var metadata: HeadMetadata

    public init(version: String?, head: SegmentationHead, metadata: HeadMetadata) {
        self.version = version
        self.head = head
        self.metadata = metadata
    }
}

public struct RefitOptions: Sendable {
    /// Candidate training. `epochs == 0` keeps the starting head unchanged (a baseline).
    public var training: TrainingOptions
    /// Promote when candidate mean Dice >= current mean Dice - tolerance.
    public var tolerance = 0.01
    /// Start from a copy of the current head (else a fresh head of the same kind).
    public var warmStart = true
    /// Make an accepted candidate current (else it is only recorded as accepted).
    public var promote = true
    /// Train on the plan's augmented views too (as `autosam fit` does), not only plain slices.
    public var augment = true

    public init() {
        training = TrainingOptions()
        training.epochs = 40
        training.patience = 15
        training.minimumEpochSamples = TrainingOptions.fewShotEpochSamples
    }
}

/// Where a refit is when it offers to yield.
public struct RefitCheckpoint: Sendable, CustomStringConvertible {
    public enum Phase: String, Sendable { case encoding, training, evaluating, recording }
    public var phase: Phase
    /// After an epoch: its number and the planned total.
    public var epoch: Int?
    public var epochs: Int?

    public var description: String { epoch.map { "\(phase.rawValue), epoch \($0)/\(epochs ?? 0)" } ?? phase.rawValue }
}

/// The answer of a yield hook. To pause, the hook blocks (e.g. while studies wait) and returns
/// `.proceed` when the refit may go on.
public enum YieldAnswer: Sendable { case proceed, abort }

public struct RefitOutcome {
    public enum Result: Equatable {
        case promoted(String)
        /// Accepted but left for a person to promote (`RefitOptions.promote == false`).
        case accepted(String)
        case rejected(String)
        case skipped
        case aborted
    }

    public var result: Result
    public var reason: String
    public var candidate: ValidationScore?
    public var current: ValidationScore?
    public var seconds: Double

    /// The version recorded, if any.
    public var version: String? {
        switch result {
        case .promoted(let v), .accepted(let v), .rejected(let v): v
        case .skipped, .aborted: nil
        }
    }
}

/// Trains a candidate head on the training store, scores it and the current head on the fixed
/// validation pool, and records it in the model store: promoted if not worse than the current
/// head by more than the tolerance, otherwise kept as rejected.
///
/// Yielding: `yield` is called on the caller's thread before each phase and after every
/// training epoch. A hook pauses the refit by blocking (training waits for its answer) and
/// stops it with `.abort`; `run` then returns `.aborted` at once. `Trainer.fit` cannot be
/// stopped from outside, so with a hook it runs on its own thread, which an abort during
/// training leaves parked (idle, holding the candidate and its samples) until the process
/// exits: abort is meant for shutting down.
public enum Refit {
    public static func run(
        training store: TrainingStore, models: ModelStore, current: VersionedHead, encoder: FrozenEncoder, cache: EmbeddingCache?,
        options: RefitOptions = RefitOptions(), yield: ((RefitCheckpoint) -> YieldAnswer)? = nil, log: ((String) -> Void)? = nil
    ) throws -> RefitOutcome {
        let start = Date()
        func elapsed() -> Double { Date().timeIntervalSince(start) }
        func outcome(_ r: RefitOutcome.Result, _ why: String, _ cand: ValidationScore? = nil, _ cur: ValidationScore? = nil) -> RefitOutcome {
            log?("refit: \(why)")
            return RefitOutcome(result: r, reason: why, candidate: cand, current: cur, seconds: elapsed())
        }
        var abortRequested = false
        func proceed(_ phase: RefitCheckpoint.Phase) -> Bool {
            if !abortRequested, let yield, yield(RefitCheckpoint(phase: phase)) == .abort { abortRequested = true }
            return !abortRequested
        }
        guard options.tolerance >= 0, options.tolerance.isFinite else { throw RefitError.invalidOptions("tolerance \(options.tolerance) must be >= 0") }
        guard current.metadata.encoder == encoder.identity else {
            throw ModelStoreError.encoderMismatch(
                version: current.version ?? "embedded default", versionEncoder: current.metadata.encoder, expected: encoder.identity)
        }
        let all = try store.cases()
        let poolIDs = try store.validationCases()
        let trainIDs = all.map(\.id).filter { !poolIDs.contains($0) }
        guard !poolIDs.isEmpty else { return outcome(.skipped, "no labelled cases yet") }
        guard !trainIDs.isEmpty else {
            return outcome(.skipped, "all \(all.count) labelled case(s) form the validation pool; the next one will train")
        }
        guard proceed(.encoding) else { return outcome(.aborted, "aborted before encoding") }
        let pool = try store.freezePool().cases
        let plan = current.metadata.plan
        let trainPatients = try trainIDs.map(store.patient), poolPatients = try pool.map(store.patient)
        let samples = try SliceData.samples(patients: trainPatients, plan: plan, encoder: encoder, cache: cache, augment: options.augment)
        log?("refit: \(samples.count) training slices from \(trainIDs.count) case(s), pool of \(pool.count)")

        let candidate = try startingHead(current, fresh: !options.warmStart, seed: options.training.seed, channels: encoder.config.outChannels)
        var epochs = 0
        if options.training.epochs > 0 {
            guard proceed(.training) else { return outcome(.aborted, "aborted before training") }
            let planned = options.training.epochs
            if let yield {
                switch EpochHandoff.fit(candidate, samples: samples, options: options.training, ask: { r in
                    yield(RefitCheckpoint(phase: .training, epoch: r.epoch, epochs: planned))
                }) {
                case .finished(let reports): epochs = reports.count
                case .abandoned(let after): return outcome(.aborted, "aborted during training (after \(after) epochs)")
                }
            } else {
                epochs = Trainer.fit(candidate, train: samples, validation: [], options: options.training).count
            }
        }
        guard proceed(.evaluating) else { return outcome(.aborted, "aborted before evaluation") }
        let candidateMeta = HeadMetadata(
            kind: candidate.kind, classes: current.metadata.classes, inChannels: current.metadata.inChannels, encoder: encoder.identity,
            encoderSize: encoder.config.name, plan: plan, trainingPatients: trainIDs, validationPatients: pool, validationDice: .nan,
            epochs: epochs, options: options.training, created: ModelStore.now(), software: "autosam \(BuildInfo.version)",
            decoderHeads: current.metadata.decoderHeads, decoderDepth: current.metadata.decoderDepth)
        // Both heads must see the same embeddings: the cache hands back float16-rounded values
        // on a hit but the encoder's float32 output on a miss, so fill it first.
        if let cache {
            for p in poolPatients {
                for frame in Set([p.info.ed, p.info.es]).sorted() {
                    let image = try p.labelledFrame(frame).image
                    for k in 0..<image.shape.nz { _ = encoder.embed(plan.window(try image.slice(k)), plan: plan, cache: cache) }
                }
            }
        }
        let candScore = try evaluate(candidate, metadata: candidateMeta, encoder: encoder, cache: cache, patients: poolPatients)
        let curScore = try evaluate(current.head, metadata: current.metadata, encoder: encoder, cache: cache, patients: poolPatients)
        guard proceed(.recording) else { return outcome(.aborted, "aborted before recording", candScore, curScore) }

        var meta = candidateMeta
        meta.validationDice = candScore.meanDice
        let accept = candScore.meanDice >= curScore.meanDice - options.tolerance
        let why = String(
            format: "candidate mean Dice %.4f %@ current (%@) %.4f - tolerance %.3f", candScore.meanDice, accept ? ">=" : "<",
            current.version ?? "embedded default", curScore.meanDice, options.tolerance)
        let metrics = ModelMetrics(
            created: meta.created, parent: current.version, encoder: encoder.identity, headKind: candidate.kind, trainingCases: trainIDs,
            trainingVolumes: trainPatients.reduce(0) { $0 + Set([$1.info.ed, $1.info.es]).count }, validationCases: pool,
            validation: candScore, parentValidation: curScore, tolerance: options.tolerance, epochs: epochs,
            trainingSeconds: elapsed(), decision: ModelDecision(status: .pending, reason: "being decided: " + why, date: ModelStore.now()))
        let version = try models.add(head: candidate, metadata: meta, metrics: metrics)
        if accept && options.promote {
            try models.promote(version, encoder: encoder.identity, reason: "automatic: " + why)
            try models.record(decision: ModelDecision(status: .promoted, reason: why, date: ModelStore.now()), for: version)
            return outcome(.promoted(version), "\(version) promoted: " + why, candScore, curScore)
        }
        try models.record(decision: ModelDecision(status: accept ? .accepted : .rejected, reason: why, date: ModelStore.now()), for: version)
        return outcome(accept ? .accepted(version) : .rejected(version), "\(version) \(accept ? "accepted" : "rejected"): " + why, candScore, curScore)
    }

    /// The candidate's starting point: a copy of the current head, or a fresh one of its kind.
    static func startingHead(_ current: VersionedHead, fresh: Bool, seed: UInt64, channels: Int) throws -> SegmentationHead {
        let src = current.head
        if fresh {
            guard src.kind != .autosam else {
                throw RefitError.invalidOptions("an AutoSAM head starts from SAM's mask decoder; refit it from the current head (warm start)")
            }
            return try Heads.make(src.kind, inChannels: channels, classes: src.classes, seed: seed)
        }
        let copy: SegmentationHead
        if let a = src as? AutoSAMHead {
            var saved = Dictionary(uniqueKeysWithValues: a.parameters.map { ($0.0, $0.1.value) })
            saved[AutoSAMHead.gaussianKey] = a.gaussian
            copy = try AutoSAMHead(saved: saved, classes: a.classes, heads: a.heads, depth: a.depth)
        } else {
            copy = try Heads.make(src.kind, inChannels: current.metadata.inChannels, classes: src.classes, seed: seed)
        }
        let values = Dictionary(uniqueKeysWithValues: src.parameters.map { ($0.0, $0.1.value) })
        for (name, v) in copy.parameters {
            guard let t = values[name], t.shape == v.value.shape else { throw CheckpointError.missingKey(name) }
            v.value = t
        }
        return copy
    }

    /// Scores a head on whole frames at their own grid: per structure Dice and ASSD (mm),
    /// averaged over the frames of `patients` (ED and ES of each).
    public static func evaluate(
        _ head: SegmentationHead, metadata: HeadMetadata, encoder: FrozenEncoder, cache: EmbeddingCache?, patients: [ACDCPatient]
    ) throws -> ValidationScore {
        let segmenter = try Segmenter(head: head, metadata: metadata, encoder: encoder, cache: cache)
        var perClass: [[ClassMetrics]] = [[], [], []]
        var perFrame: [String: Double] = [:]
        for p in patients {
            for frame in Set([p.info.ed, p.info.es]).sorted() {
                let (image, reference) = try p.labelledFrame(frame)
                let m = try SegmentationMetrics.evaluate(prediction: try segmenter.segment(image), reference: reference)
                for (i, c) in m.classes.enumerated() { perClass[i].append(c) }
                perFrame["\(p.id) frame \(frame)"] = m.meanDice
            }
        }
        let classes = CardiacLabel.structures.enumerated().map { i, label in
            let ms = perClass[i], assds = ms.compactMap(\.assd)
            return ClassScore(
                label: label.rawValue, name: label.name, dice: ms.map(\.dice).reduce(0, +) / Double(max(1, ms.count)),
                assd: assds.isEmpty ? nil : assds.reduce(0, +) / Double(assds.count))
        }
        let assds = classes.compactMap(\.assd)
        return ValidationScore(
            classes: classes, meanDice: classes.map(\.dice).reduce(0, +) / Double(classes.count),
            meanASSD: assds.count == classes.count ? assds.reduce(0, +) / Double(assds.count) : nil, frames: perFrame.count,
            perFrame: perFrame)
    }
}

/// Runs `Trainer.fit` on its own thread and hands every epoch's report to the calling thread,
/// which answers before training goes on; on `.abort` the training thread is left waiting
/// (it never resumes) and the caller goes on without it.
final class EpochHandoff: @unchecked Sendable {
    enum Result {
        case finished([EpochReport])
        case abandoned(afterEpochs: Int)
    }

    private let condition = NSCondition()
    private var pending: EpochReport?
    private var answer: YieldAnswer?
    private var reports: [EpochReport]?

    static func fit(
        _ head: SegmentationHead, samples: [TrainingSample], options: TrainingOptions, ask: (EpochReport) -> YieldAnswer
    ) -> Result {
        let h = EpochHandoff()
        let box = HeadBox(head)
        let thread = Thread {
            let r = Trainer.fit(box.head, train: samples, validation: [], options: options) { h.offer($0) }
            h.condition.lock()
            h.reports = r
            h.condition.broadcast()
            h.condition.unlock()
        }
        // The training thread runs the autograd tape and its parallel kernels: a roomy stack.
        thread.stackSize = 64 << 20
        thread.start()
        h.condition.lock()
        defer { h.condition.unlock() }
        while true {
            while h.pending == nil && h.reports == nil { h.condition.wait() }
            if let r = h.reports { return .finished(r) }
            let report = h.pending!
            h.pending = nil
            h.condition.unlock()
            let a = ask(report)
            h.condition.lock()
            h.answer = a
            h.condition.broadcast()
            if a == .abort { return .abandoned(afterEpochs: report.epoch) }
        }
    }

    /// Called on the training thread after each epoch: waits for the caller's answer, and
    /// for ever after an abort.
    private func offer(_ r: EpochReport) {
        condition.lock()
        pending = r
        condition.broadcast()
        while answer == nil { condition.wait() }
        let a = answer!
        answer = nil
        if a == .abort { while true { condition.wait() } }
        condition.unlock()
    }
}

/// Passes a head (a class without Sendable) to the training thread, which alone uses it until
/// it finishes or is abandoned.
private final class HeadBox: @unchecked Sendable {
    let head: SegmentationHead
    init(_ head: SegmentationHead) { self.head = head }
}
