import Foundation
import NN
import Tensor
import Testing

@testable import AutoSAM

/// A training run that stops (here after epochs 2 and 4; in use a kill or a session's end) and
/// goes on from its saved state ends with the same reports and the same weights, bit for bit,
/// as a run that never stopped; a state that belongs to another run is refused with a reason.
@Suite struct TrainingResumeTests {
    static func samples(_ count: Int, views: Int, seed: UInt64) -> [TrainingSample] {
        var out: [TrainingSample] = []
        for s in 0..<count {
            for v in 0..<views {
                let (e, l) = TrainerTests().sample(seed &+ UInt64(10 * s + v + 1), channels: 8, side: 2)
                out.append(TrainingSample(embedding: e, labels: l, source: "slice \(s) view \(v)", slice: views > 1 ? "slice \(s)" : nil))
            }
        }
        return out
    }

    let train = Self.samples(3, views: 4, seed: 100)
    let validation = Self.samples(2, views: 1, seed: 500)
    var options: TrainingOptions {
        var o = TrainingOptions()
        o.epochs = 6
        o.patience = 10
        o.minimumEpochSamples = 6
        o.batchSize = 2
        o.seed = 9
        return o
    }

    func head() -> CNNHead { CNNHead(inChannels: 8, classes: 4, seed: 5) }
    func weights(_ h: SegmentationHead) -> [[Float]] { h.parameters.map(\.1.value.data) }

    @Test func aRunStoppedTwiceEndsAsOneThatNeverStopped() throws {
        let straight = head()
        let once = Trainer.fit(straight, train: train, validation: validation, options: options)
        try #require(once.count == 6)

        let folder = NSTemporaryDirectory() + "autosam-resume-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let first = try Trainer.fit(head(), train: train, validation: validation, options: options,
                                    resume: TrainingResume(folder: folder, stopAfter: { $0 == 2 }))
        #expect(first.count == 2)
        #expect(TrainingResume(folder: folder).savedEpoch == 2)
        // Each time a fresh head, as a new process would have: the state brings the weights.
        _ = try Trainer.fit(head(), train: train, validation: validation, options: options,
                            resume: TrainingResume(folder: folder, stopAfter: { $0 == 4 }))
        let resumed = head()
        var seen: [Int] = []
        let all = try Trainer.fit(resumed, train: train, validation: validation, options: options,
                                  resume: TrainingResume(folder: folder)) { seen.append($0.epoch) }
        #expect(seen == [5, 6])
        #expect(all.map(\.loss) == once.map(\.loss))
        #expect(all.map(\.validationDice) == once.map(\.validationDice))
        #expect(all.map(\.learningRate) == once.map(\.learningRate))
        #expect(weights(resumed) == weights(straight), "the resumed run ended with other weights")

        // A finished run's state gives the finished model again, without training.
        let again = head()
        var trained = false
        let same = try Trainer.fit(again, train: train, validation: validation, options: options,
                                   resume: TrainingResume(folder: folder)) { _ in trained = true }
        #expect(!trained && same.map(\.loss) == once.map(\.loss))
        #expect(weights(again) == weights(straight))
    }

    @Test func aStateOfAnotherRunIsRefusedWithAReason() throws {
        let folder = NSTemporaryDirectory() + "autosam-resume-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try Trainer.fit(head(), train: train, validation: validation, options: options,
                            resume: TrainingResume(folder: folder, stopAfter: { $0 == 1 }))
        func refusal(_ body: () throws -> Any) -> String {
            do { _ = try body(); return "accepted" } catch { return "\(error)" }
        }
        var other = options
        other.epochs = 7
        #expect(refusal { try Trainer.fit(head(), train: train, validation: validation, options: other, resume: TrainingResume(folder: folder)) }
            .contains("other options"))
        #expect(refusal { try Trainer.fit(CNNHead(inChannels: 8, classes: 3, seed: 5), train: train, validation: validation, options: options, resume: TrainingResume(folder: folder)) }
            .contains("another head"))
        #expect(refusal { try Trainer.fit(head(), train: Array(train.dropLast()), validation: validation, options: options, resume: TrainingResume(folder: folder)) }
            .contains("trained on 12 samples"))
        // Tensors that are not the ones the state was saved with.
        let tensors = folder + "/training-state.safetensors"
        var blob = try Data(contentsOf: URL(fileURLWithPath: tensors))
        blob[blob.count - 1] ^= 0xFF
        try blob.write(to: URL(fileURLWithPath: tensors))
        #expect(refusal { try Trainer.fit(head(), train: train, validation: validation, options: options, resume: TrainingResume(folder: folder)) }
            .contains("does not belong to its state"))
        try "{".write(toFile: folder + "/training-state.json", atomically: true, encoding: .utf8)
        #expect(refusal { try Trainer.fit(head(), train: train, validation: validation, options: options, resume: TrainingResume(folder: folder)) }
            .contains("unreadable"))
    }
}
