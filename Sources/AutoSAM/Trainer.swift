import CardiacImaging
import Foundation
import NN
import Tensor

public struct TrainingOptions: Codable, Sendable {
    public var epochs = 120
    public var batchSize = 4
    public var learningRate: Float = 5e-4
    public var seed: UInt64 = 0
    /// Early stopping: epochs without a better validation Dice.
    public var patience = 30
    /// Fewest training samples in an epoch: an epoch is one view of every slice, repeated (other
    /// random views) until it holds at least this many, so that an epoch of one volume is not
    /// a handful of steps (0 = one view per slice, the paper's epoch). `fit`, the experiment
    /// and refits use `TrainingOptions.fewShotEpochSamples`.
    public var minimumEpochSamples = 0
    /// About five volumes' slices: a one-volume epoch then holds as many samples as a
    /// five-volume one (docs/ARCHITECTURE.md: one-volume CNN head 46.9 -> 66.1 mean Dice).
    public static let fewShotEpochSamples = 100
    /// The values a command or configuration may ask for.
    public static let minimumEpochSamplesRange = 0...100_000
    public init() {}

    enum CodingKeys: String, CodingKey { case epochs, batchSize, learningRate, seed, patience, minimumEpochSamples }

    /// Options saved before `minimumEpochSamples` existed read as the paper's epoch.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        epochs = try c.decode(Int.self, forKey: .epochs)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        seed = try c.decode(UInt64.self, forKey: .seed)
        patience = try c.decode(Int.self, forKey: .patience)
        minimumEpochSamples = try c.decodeIfPresent(Int.self, forKey: .minimumEpochSamples) ?? 0
    }
}

public struct EpochReport: Codable, Sendable {
    public var epoch: Int
    public var loss: Float
    public var validationDice: Double
    public var learningRate: Float
    public var seconds: Double
    /// Training samples the epoch went through.
    public var samples = 0
}

/// Cross entropy + soft Dice (background excluded), Adam, a plateau schedule, and early
/// stopping on validation Dice; the best epoch's weights are kept.
public enum Trainer {
    /// The training loss of a batch: cross entropy over every pixel of the batch plus soft
    /// Dice computed as batch Dice (each class's intersection and sums pooled over all the
    /// batch's pixels, background excluded). `logits` are [K, H, W] per sample, `labels` the
    /// matching [H*W] class indexes.
    public static func batchLoss(_ logits: [Variable], labels: [[Int]]) -> Variable {
        precondition(!logits.isEmpty && logits.count == labels.count)
        let flat = Variable.concatRows(logits.map { l in
            l.reshaped([l.shape[0], l.shape[1] * l.shape[2]]).permuted([1, 0])  // [HW, K]
        })
        let all = labels.flatMap { $0 }
        return Variable.crossEntropy(flat, labels: all) + Variable.softDice(flat.softmax(), labels: all)
    }

    /// Loss of one sample (a batch of one).
    static func loss(_ logits: Variable, labels: [Int]) -> Variable { batchLoss([logits], labels: [labels]) }

    /// One training step's loss and gradients, the heavy parts on all cores: every sample's
    /// forward pass runs in parallel, the (cheap) batch loss is differentiated once with
    /// respect to the logits, then every sample's backward pass runs in parallel from its
    /// logits' gradient. The parameter gradients are summed in sample order, so a rerun gives
    /// the same numbers. Equal to `batchLoss(...).backward()` (tested).
    public static func accumulateGradients(
        _ head: SegmentationHead, embeddings: [Tensor], labels: [[Int]]
    ) -> Float {
        let params = head.parameters.map(\.1)
        let logits = Parallel.map(embeddings.count) { head.forward(Variable(embeddings[$0])) }
        let detached = logits.map { Variable($0.value, requiresGrad: true) }
        let loss = batchLoss(detached, labels: labels)
        loss.backward()
        let sinks = logits.map { _ in LeafGradients() }
        Parallel.forEach(logits.count) { b in
            logits[b].backward(seed: detached[b].grad!, leaves: sinks[b])
        }
        for sink in sinks { sink.apply(to: params) }
        return loss.value.data[0]
    }

    /// Mean foreground Dice of argmax predictions over samples (classes 1..<K pooled per sample).
    public static func dice(_ head: SegmentationHead, _ samples: [TrainingSample]) -> Double {
        guard !samples.isEmpty else { return .nan }
        // Samples on all cores; summed in sample order, so the value does not depend on timing.
        let perSample = Parallel.map(samples.count) { i in
            let pred = predict(head, samples[i].embedding), labels = samples[i].labels
            var sum = 0.0
            for c in 1..<head.classes {
                sum += SegmentationMetrics.dice(pred.map { $0 == c }, labels.map { $0 == c })
            }
            return sum / Double(head.classes - 1)
        }
        return perSample.reduce(0, +) / Double(samples.count)
    }

    /// Argmax labels [4g * 4g] of one embedding.
    public static func predict(_ head: SegmentationHead, _ embedding: Tensor) -> [Int] {
        let logits = Autograd.withoutGrad { head.forward(Variable(embedding)) }.value
        let k = logits.shape[0], hw = logits.count / k
        return (0..<hw).map { i in (0..<k).max { logits.data[$0 * hw + i] < logits.data[$1 * hw + i] }! }
    }

    public static func fit(
        _ head: SegmentationHead, train: [TrainingSample], validation: [TrainingSample], options: TrainingOptions,
        progress: ((EpochReport) -> Void)? = nil
    ) -> [EpochReport] {
        let run = TrainingRun(head, train: train, validation: validation, options: options)
        while run.nextEpoch(progress: progress) {}
        return run.finish()
    }

    /// `fit` that keeps its state in `resume.folder` after every epoch and, when the folder
    /// holds the state of the same run (same options, head and samples), goes on from it: a
    /// run stopped at any point (kill -9, a session's end) ends with the same model as one that
    /// never stopped. Returns every epoch's report, those before the stop included. When
    /// `resume.stopAfter` stops it early, the head holds the last epoch's weights, not the best.
    public static func fit(
        _ head: SegmentationHead, train: [TrainingSample], validation: [TrainingSample], options: TrainingOptions,
        resume: TrainingResume, progress: ((EpochReport) -> Void)? = nil
    ) throws -> [EpochReport] {
        let run = TrainingRun(head, train: train, validation: validation, options: options)
        try resume.restore(run)
        // Each epoch's save records whether the run ended with it; a finished run restored
        // here trains nothing and is not saved again.
        while run.nextEpoch(progress: progress) {
            try resume.save(run)
            if resume.stopAfter?(run.epoch) == true { return run.reports }
        }
        return run.finish()
    }
}

/// One training run, epoch by epoch: the state `Trainer.fit` keeps between epochs, which
/// `TrainingResume` saves and restores.
final class TrainingRun {
    let head: SegmentationHead
    let train: [TrainingSample], validation: [TrainingSample]
    let options: TrainingOptions
    let params: [Variable]
    let optimizer: Adam
    var schedule = PlateauSchedule(factor: 0.5, patience: 10)
    var rng: Initializer
    var best = -1.0, bestWeights: [Tensor], since = 0
    var epoch = 0
    var reports: [EpochReport] = []
    /// Early stopping was reached (or every epoch ran).
    var done = false
    /// Views of the same slice, in order of first appearance.
    let groups: [[Int]]
    let rounds: Int

    init(_ head: SegmentationHead, train: [TrainingSample], validation: [TrainingSample], options: TrainingOptions) {
        self.head = head
        self.train = train
        self.validation = validation
        self.options = options
        params = head.parameters.map(\.1)
        optimizer = Adam(params, learningRate: options.learningRate)
        rng = Initializer(state: options.seed &+ 77)
        bestWeights = params.map(\.value)
        var groupIndex: [String: Int] = [:], groups: [[Int]] = []
        for (i, s) in train.enumerated() {
            guard let key = s.slice else { groups.append([i]); continue }
            if let g = groupIndex[key] { groups[g].append(i) } else { groupIndex[key] = groups.count; groups.append([i]) }
        }
        self.groups = groups
        rounds = max(1, (options.minimumEpochSamples + groups.count - 1) / max(1, groups.count))
    }

    /// Trains one epoch; false when the run had already ended (early stopping, or every epoch).
    func nextEpoch(progress: ((EpochReport) -> Void)?) -> Bool {
        guard !done, epoch < max(1, options.epochs) else { done = true; return false }
        epoch += 1
        let start = Date()
        // One view of each slice (seeded; several rounds when an epoch must hold more
        // samples), in a seeded shuffle: a rerun gives the same model.
        var order: [Int] = []
        for _ in 0..<rounds {
            order += groups.map { g in g[g.count == 1 ? 0 : Int((rng.uniform() + 1) / 2 * Float(g.count)) % g.count] }
        }
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int((rng.uniform() + 1) / 2 * Float(i + 1)) % (i + 1)
            order.swapAt(i, j)
        }
        var total: Float = 0
        for batchStart in stride(from: 0, to: order.count, by: options.batchSize) {
            let batch = Array(order[batchStart..<min(order.count, batchStart + options.batchSize)])
            let lossValue = Trainer.accumulateGradients(
                head, embeddings: batch.map { train[$0].embedding }, labels: batch.map { train[$0].labels })
            total += lossValue * Float(batch.count)
            optimizer.update()
        }
        let meanLoss = total / Float(max(1, order.count))
        let vd = validation.isEmpty ? 1 - Double(meanLoss) : Trainer.dice(head, validation)
        let rate = schedule.step(validation.isEmpty ? meanLoss : Float(1 - vd), optimizer: optimizer)
        let report = EpochReport(
            epoch: epoch, loss: meanLoss, validationDice: vd, learningRate: rate, seconds: Date().timeIntervalSince(start), samples: order.count)
        reports.append(report)
        progress?(report)
        if vd > best {
            best = vd
            bestWeights = params.map(\.value)
            since = 0
        } else {
            since += 1
            if since >= options.patience { done = true }
        }
        if epoch >= max(1, options.epochs) { done = true }
        return true
    }

    /// The best epoch's weights into the head; every epoch's report.
    func finish() -> [EpochReport] {
        for (p, w) in zip(params, bestWeights) { p.value = w }
        return reports
    }
}
