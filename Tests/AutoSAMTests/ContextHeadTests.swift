import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import Tensor

/// The context head (ours): its output at one corner of the field depends on the embedding at
/// the opposite corner, which the paper's CNN head cannot see; it saves and reloads like the
/// other heads; an encoder grid it cannot pool is refused with a message. (Forward, loss and
/// gradients against PyTorch: HeadParityTests.)
@Suite struct ContextHeadTests {
    static let grid = 16, channels = 8

    func embedding(seed: UInt64) -> Tensor {
        var r = Initializer(state: seed)
        let n = Self.channels * Self.grid * Self.grid
        return Tensor(shape: [Self.channels, Self.grid, Self.grid], data: (0..<n).map { _ in r.uniform() })
    }

    /// Largest change of the logits in the output corner far from token (0, 0) when only
    /// that token's embedding changes.
    func farCornerChange(_ head: SegmentationHead) -> Float {
        let a = embedding(seed: 5)
        var b = a
        for c in 0..<Self.channels { b.data[c * Self.grid * Self.grid] += 3 }
        let ya = Autograd.withoutGrad { head.forward(Variable(a)) }.value
        let yb = Autograd.withoutGrad { head.forward(Variable(b)) }.value
        let side = 4 * Self.grid
        #expect(ya.shape == [4, side, side])
        var worst: Float = 0
        for k in 0..<4 {
            for y in (side - 8)..<side {
                for x in (side - 8)..<side {
                    let i = (k * side + y) * side + x
                    worst = max(worst, abs(ya.data[i] - yb.data[i]))
                }
            }
        }
        return worst
    }

    @Test func seesTheWholeGridWhereTheCNNHeadDoesNot() {
        let cnn = farCornerChange(CNNHead(inChannels: Self.channels, classes: 4, seed: 1))
        let context = farCornerChange(ContextHead(inChannels: Self.channels, classes: 4, seed: 1))
        #expect(cnn == 0, "the CNN head's receptive field is a few tokens: \(cnn)")
        #expect(context > 1e-4, "the context head's deepest level covers the field: \(context)")
    }

    @Test func savesAndReloadsToIdenticalPredictions() throws {
        let dir = NSTemporaryDirectory() + "autosam-ctx-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let head = ContextHead(inChannels: Self.channels, classes: 4, seed: 3)
        let meta = HeadMetadata(
            kind: .context, classes: CardiacLabel.allCases.map(\.name), inChannels: Self.channels, encoder: "random test",
            encoderSize: "test", plan: .paper(encoderSize: 128), trainingPatients: ["p1"], validationPatients: [], validationDice: 0.5,
            epochs: 1, options: TrainingOptions(), created: "now", software: "test")
        try HeadModel.save(head, metadata: meta, to: dir)
        let (loaded, meta2) = try HeadModel.load(dir)
        #expect(meta2.kind == .context && loaded is ContextHead)
        let e = embedding(seed: 9)
        #expect(Trainer.predict(head, e) == Trainer.predict(loaded, e))
    }

    @Test func aGridThatCannotBePooledIsRefused() throws {
        let tiny = try FrozenEncoder(source: "tiny")  // 14 x 14 grid
        #expect(tiny.config.gridSize % 8 != 0)
        do {
            _ = try HeadSetup.freshHead(.context, encoder: tiny, seed: 0)
            Issue.record("a context head was built on a \(tiny.config.gridSize)-token grid")
        } catch {
            #expect("\(error)".contains("divisible by 8") && "\(error)".contains("14 x 14"), "\(error)")
        }
        let demo = try FrozenEncoder(source: "demo")
        #expect(try HeadSetup.freshHead(.context, encoder: demo, seed: 0) is ContextHead)
    }
}
