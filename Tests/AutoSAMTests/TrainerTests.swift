import Foundation
import NN
import Tensor
import Testing

@testable import AutoSAM

@Suite struct TrainerTests {
    func sample(_ seed: UInt64, channels: Int, side: Int) -> (Tensor, [Int]) {
        var r = Initializer(state: seed)
        let emb = Tensor(shape: [channels, side, side], data: (0..<(channels * side * side)).map { _ in r.uniform() })
        // Labels at the CNN head's output side (4x); one sample has no foreground at all,
        // which per-sample Dice handles badly and batch Dice handles well.
        let labels = (0..<(16 * side * side)).map { i in seed == 3 ? 0 : Int((UInt64(i) &* 2654435761 &+ seed) % 4) }
        return (emb, labels)
    }

    /// The parallel two-stage step (forward per sample, batch loss once, backward per sample)
    /// gives the same loss and parameter gradients as back-propagating the batch loss of the
    /// whole batch through one graph.
    @Test func parallelStepEqualsTheBatchLossGradient() throws {
        let data = [sample(1, channels: 8, side: 4), sample(2, channels: 8, side: 4), sample(3, channels: 8, side: 4)]
        let a = CNNHead(inChannels: 8, classes: 4, seed: 11), b = CNNHead(inChannels: 8, classes: 4, seed: 11)
        let lossA = Trainer.accumulateGradients(a, embeddings: data.map(\.0), labels: data.map(\.1))
        let whole = Trainer.batchLoss(data.map { b.forward(Variable($0.0)) }, labels: data.map(\.1))
        whole.backward()
        #expect(abs(lossA - whole.value.data[0]) <= 1e-5 * max(1, abs(lossA)))
        var worst: Float = 0, scale: Float = 0
        for ((_, pa), (_, pb)) in zip(a.parameters, b.parameters) {
            let ga = try #require(pa.grad), gb = try #require(pb.grad)
            for i in 0..<ga.count {
                worst = max(worst, abs(ga.data[i] - gb.data[i]))
                scale = max(scale, abs(gb.data[i]))
            }
        }
        #expect(scale > 0)
        #expect(worst <= 1e-5 * scale, "worst \(worst) of \(scale)")
    }

    /// Batch Dice pools the classes over the batch: a sample without foreground does not
    /// contribute a Dice of its own (per-sample Dice would).
    @Test func batchDicePoolsOverTheBatch() {
        let (e1, l1) = sample(1, channels: 8, side: 2), (e3, l3) = sample(3, channels: 8, side: 2)
        let head = CNNHead(inChannels: 8, classes: 4, seed: 2)
        let x1 = Autograd.withoutGrad { head.forward(Variable(e1)) }, x3 = Autograd.withoutGrad { head.forward(Variable(e3)) }
        let batch = Trainer.batchLoss([x1, x3], labels: [l1, l3]).value.data[0]
        let mean = (Trainer.loss(x1, labels: l1).value.data[0] + Trainer.loss(x3, labels: l3).value.data[0]) / 2
        #expect(abs(batch - mean) > 1e-3, "batch \(batch) vs mean of per-sample \(mean)")
    }

    /// An epoch holds at least `minimumEpochSamples` samples: whole rounds of one view per
    /// slice (3 slices, at least 10 -> 4 rounds, 12 samples); 0 is one view per slice. Reruns
    /// agree, and options saved before the field existed read as 0.
    @Test func minimumEpochSamplesRepeatsRoundsOfViews() throws {
        var train: [TrainingSample] = []
        for s in 0..<3 {
            for v in 0..<4 {
                let (e, l) = sample(UInt64(10 * s + v + 1), channels: 8, side: 2)
                train.append(TrainingSample(embedding: e, labels: l, source: "slice \(s) view \(v)", slice: "slice \(s)"))
            }
        }
        var options = TrainingOptions()
        options.epochs = 2
        options.patience = 2
        func run(_ minimum: Int) -> [EpochReport] {
            options.minimumEpochSamples = minimum
            return Trainer.fit(CNNHead(inChannels: 8, classes: 4, seed: 3), train: train, validation: [], options: options)
        }
        #expect(run(0).map(\.samples) == [3, 3])
        let a = run(10), b = run(10)
        #expect(a.map(\.samples) == [12, 12])
        #expect(a.map(\.loss) == b.map(\.loss))
        let old = #"{"epochs":120,"batchSize":4,"learningRate":0.0005,"seed":0,"patience":30}"#
        #expect(try JSONDecoder().decode(TrainingOptions.self, from: Data(old.utf8)).minimumEpochSamples == 0)
        let saved = try JSONDecoder().decode(TrainingOptions.self, from: JSONEncoder().encode(options))
        #expect(saved.minimumEpochSamples == 10 && saved.epochs == 2)
    }
}
