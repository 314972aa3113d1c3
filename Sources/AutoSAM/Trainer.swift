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
    public init() {}
}

public struct EpochReport: Codable, Sendable {
    public var epoch: Int
    public var loss: Float
    public var validationDice: Double
    public var learningRate: Float
    public var seconds: Double
}

/// Cross entropy + soft Dice (background excluded), Adam, a plateau schedule, and early
/// stopping on validation Dice; the best epoch's weights are kept.
public enum Trainer {
    /// Loss of one sample's logits [K, H, W] against labels [H*W].
    static func loss(_ logits: Variable, labels: [Int]) -> Variable {
        let k = logits.shape[0], hw = logits.shape[1] * logits.shape[2]
        let flat = logits.reshaped([k, hw]).permuted([1, 0])  // [HW, K]
        return Variable.crossEntropy(flat, labels: labels) + Variable.softDice(flat.softmax(), labels: labels)
    }

    /// Mean foreground Dice of argmax predictions over samples (classes 1..<K pooled per sample).
    public static func dice(_ head: SegmentationHead, _ samples: [TrainingSample]) -> Double {
        guard !samples.isEmpty else { return .nan }
        var total = 0.0
        for s in samples {
            let pred = predict(head, s.embedding)
            var sum = 0.0
            for c in 1..<head.classes {
                sum += SegmentationMetrics.dice(pred.map { $0 == c }, s.labels.map { $0 == c })
            }
            total += sum / Double(head.classes - 1)
        }
        return total / Double(samples.count)
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
        let params = head.parameters.map(\.1)
        let opt = Adam(params, learningRate: options.learningRate)
        var schedule = PlateauSchedule(factor: 0.5, patience: 10)
        var rng = Initializer(state: options.seed &+ 77)
        var best = -1.0, bestWeights = params.map(\.value), since = 0
        var reports: [EpochReport] = []
        for epoch in 1...max(1, options.epochs) {
            let start = Date()
            // Seeded shuffle: a rerun gives the same model.
            var order = Array(train.indices)
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int((rng.uniform() + 1) / 2 * Float(i + 1)) % (i + 1)
                order.swapAt(i, j)
            }
            var total: Float = 0
            for batchStart in stride(from: 0, to: order.count, by: options.batchSize) {
                let batch = Array(order[batchStart..<min(order.count, batchStart + options.batchSize)])
                // The batch's samples run in parallel (single-threaded GEMMs inside), each
                // adding its gradient to the shared parameters.
                var losses = [Float](repeating: 0, count: batch.count)
                let sinks = batch.map { _ in LeafGradients() }
                losses.withUnsafeMutableBufferPointer { lp in
                    let out = lp.baseAddress!
                    Parallel.forEach(batch.count) { b in
                        let i = batch[b]
                        let l = loss(head.forward(Variable(train[i].embedding)), labels: train[i].labels)
                        out[b] = l.value.data[0]
                        l.backward(seed: Tensor(shape: [1], data: [1 / Float(batch.count)]), leaves: sinks[b])
                    }
                }
                // Summed in sample order: the same seed gives the same model.
                for sink in sinks { sink.apply(to: params) }
                total += losses.reduce(0, +)
                opt.update()
            }
            let meanLoss = total / Float(max(1, train.count))
            let vd = validation.isEmpty ? 1 - Double(meanLoss) : dice(head, validation)
            let rate = schedule.step(validation.isEmpty ? meanLoss : Float(1 - vd), optimizer: opt)
            let report = EpochReport(epoch: epoch, loss: meanLoss, validationDice: vd, learningRate: rate, seconds: Date().timeIntervalSince(start))
            reports.append(report)
            progress?(report)
            if vd > best {
                best = vd
                bestWeights = params.map(\.value)
                since = 0
            } else {
                since += 1
                if since >= options.patience { break }
            }
        }
        for (p, w) in zip(params, bestWeights) { p.value = w }
        return reports
    }
}
