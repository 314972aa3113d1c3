import CardiacImaging
import Crypto
import Foundation
import NN
import Tensor

/// Where a training run keeps its state after every epoch (`training-state.json` and
/// `training-state.safetensors`, each written atomically, the tensors first), so that a run
/// that stopped goes on from its last whole epoch. The state is that of one run: it is used
/// only by a run with the same options, the same head (parameter names and shapes) and the
/// same numbers of samples, and refused with a reason otherwise.
public struct TrainingResume: Sendable {
    public var folder: String
    /// Asked after each saved epoch with its number: true stops the run there.
    public var stopAfter: (@Sendable (Int) -> Bool)?

    public init(folder: String, stopAfter: (@Sendable (Int) -> Bool)? = nil) {
        self.folder = folder
        self.stopAfter = stopAfter
    }

    var jsonPath: String { folder + "/training-state.json" }
    var tensorsPath: String { folder + "/training-state.safetensors" }

    /// The run's state apart from its tensors.
    struct Saved: Codable {
        var format = 1
        var options: TrainingOptions
        var parameters: [String]
        var shapes: [[Int]]
        var trainSamples: Int
        var validationSamples: Int
        var epoch: Int
        var done: Bool
        var rng: UInt64
        var best: Double
        var since: Int
        var schedule: PlateauSchedule
        var learningRate: Float
        var adamStep: Int
        var reports: [EpochReport]
        /// Which tensors file goes with this state (each save writes a new one).
        var tensorsDigest: String
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    static func digest(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// The last whole epoch saved in the folder, if it holds a state.
    public var savedEpoch: Int? {
        FileManager.default.contents(atPath: jsonPath).flatMap { try? Self.decoder().decode(Saved.self, from: $0).epoch }
    }

    func save(_ run: TrainingRun) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var tensors: [String: Tensor] = [:]
        let adam = run.optimizer.state
        for (i, p) in run.params.enumerated() {
            let shape = p.value.shape
            tensors["weight.\(i)"] = p.value
            tensors["best.\(i)"] = run.bestWeights[i]
            tensors["adam_m.\(i)"] = Tensor(shape: shape, data: adam.m[i])
            tensors["adam_v.\(i)"] = Tensor(shape: shape, data: adam.v[i])
        }
        let blob = try SafeTensors.encode(tensors)
        let saved = Saved(
            options: run.options, parameters: run.head.parameters.map(\.0), shapes: run.params.map(\.value.shape),
            trainSamples: run.train.count, validationSamples: run.validation.count, epoch: run.epoch, done: run.done,
            rng: run.rng.state, best: run.best, since: run.since, schedule: run.schedule,
            learningRate: adam.learningRate, adamStep: adam.step, reports: run.reports, tensorsDigest: Self.digest(blob))
        try AtomicFile.write(blob, to: tensorsPath)
        try AtomicFile.write(try Self.encoder().encode(saved), to: jsonPath)
    }

    /// Puts a saved state into `run`, if the folder holds one; nothing when it holds none.
    func restore(_ run: TrainingRun) throws {
        guard let json = FileManager.default.contents(atPath: jsonPath) else { return }
        func refuse(_ why: String) -> TrainingStateError { TrainingStateError(description: "cannot go on from \(folder): \(why)") }
        let saved: Saved
        do { saved = try Self.decoder().decode(Saved.self, from: json) } catch { throw refuse("its state is unreadable (\(error))") }
        guard saved.format == 1 else { throw refuse("state format \(saved.format) is not known") }
        let encoder = Self.encoder()
        guard try encoder.encode(saved.options) == encoder.encode(run.options) else {
            throw refuse("it was trained with other options (epochs, batch size, rate, seed, patience or epoch size)")
        }
        guard saved.parameters == run.head.parameters.map(\.0), saved.shapes == run.params.map(\.value.shape) else {
            throw refuse("it holds another head (its parameters differ)")
        }
        guard saved.trainSamples == run.train.count, saved.validationSamples == run.validation.count else {
            throw refuse("it was trained on \(saved.trainSamples) samples (\(saved.validationSamples) to validate), this run has \(run.train.count) (\(run.validation.count))")
        }
        guard let blob = FileManager.default.contents(atPath: tensorsPath), Self.digest(blob) == saved.tensorsDigest else {
            throw refuse("its tensors file is missing or does not belong to its state")
        }
        let tensors = try SafeTensors.decode(blob, path: tensorsPath).tensors
        func tensor(_ name: String, _ i: Int) throws -> Tensor {
            guard let t = tensors["\(name).\(i)"], t.shape == saved.shapes[i] else { throw refuse("its tensor \(name).\(i) is missing or of another shape") }
            return t
        }
        var adam = run.optimizer.state
        for i in run.params.indices {
            run.params[i].value = try tensor("weight", i)
            run.bestWeights[i] = try tensor("best", i)
            adam.m[i] = try tensor("adam_m", i).data
            adam.v[i] = try tensor("adam_v", i).data
        }
        adam.learningRate = saved.learningRate
        adam.step = saved.adamStep
        run.optimizer.state = adam
        run.schedule = saved.schedule
        run.rng = Initializer(state: saved.rng)
        run.best = saved.best
        run.since = saved.since
        run.epoch = saved.epoch
        run.done = saved.done
        run.reports = saved.reports
    }
}

/// A saved training state that this run cannot go on from.
public struct TrainingStateError: Error, CustomStringConvertible {
    public var description: String
}
