import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// One training step of each head against PyTorch (scripts/fixtures/make_head_fixtures.py:
/// the AutoSAM head built from the official segment_anything modules, the CNN and linear heads
/// from torch.nn, float64 reference): forward logits, the loss and every parameter gradient,
/// max abs error <= 1e-4 of the reference's largest magnitude.
@Suite struct HeadParityTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let tolerance: Float = 1e-4

    struct Fixture {
        let tensors: [String: Tensor]
        let meta: [String: String]

        init(_ kind: HeadKind) throws {
            (tensors, meta) = try SafeTensors.load("\(HeadParityTests.folder)/\(kind.rawValue)_head.safetensors")
        }

        func tensor(_ key: String) throws -> Tensor { try #require(tensors[key], "fixture has no \(key)") }
        func int(_ key: String) throws -> Int { try #require(meta[key].flatMap { Int($0) }, "fixture metadata has no \(key)") }

        /// The parameters by our names (the "weight." entries).
        var weights: [String: Tensor] {
            Dictionary(uniqueKeysWithValues: tensors.compactMap { k, v in k.hasPrefix("weight.") ? (String(k.dropFirst(7)), v) : nil })
        }
    }

    /// Our head with the fixture's weights, loaded strictly: every parameter of ours has a
    /// reference weight of the same shape and every reference weight is one of ours.
    static func head(_ kind: HeadKind, _ f: Fixture) throws -> SegmentationHead {
        let classes = try f.int("classes"), inChannels = try f.int("in_channels")
        let head: SegmentationHead
        switch kind {
        case .autosam:
            var saved = f.weights
            saved[AutoSAMHead.gaussianKey] = try f.tensor("pe_gaussian")
            head = try AutoSAMHead(saved: saved, classes: classes, heads: try f.int("decoder_heads"), depth: try f.int("decoder_depth"))
        case .cnn: head = CNNHead(inChannels: inChannels, classes: classes, seed: 9)
        case .linear: head = LinearHead(inChannels: inChannels, classes: classes, seed: 9)
        case .context: head = ContextHead(inChannels: inChannels, classes: classes, seed: 9)
        }
        let weights = f.weights
        #expect(Set(head.parameters.map(\.0)) == Set(weights.keys), "parameter names differ from the reference's")
        for (name, v) in head.parameters {
            let w = try #require(weights[name], "no reference weight for \(name)")
            #expect(w.shape == v.value.shape, "\(name): \(w.shape) vs ours \(v.value.shape)")
            v.value = w
        }
        return head
    }

    /// Max abs error over the reference's largest magnitude.
    static func relative(_ ours: Tensor, _ ref: Tensor) -> Float {
        ours.maxAbsDifference(ref.reshaped(ours.shape)) / max(ref.maxAbs, 1e-30)
    }

    @Test(arguments: HeadKind.allCases)
    func oneTrainingStepMatchesPyTorch(kind: HeadKind) throws {
        let f = try Fixture(kind)
        let head = try Self.head(kind, f)
        let (b, g, k) = (try f.int("batch"), try f.int("grid"), try f.int("classes"))
        let emb = try f.tensor("embeddings"), labelsF = try f.tensor("labels")
        let plane = emb.count / b, pixels = 16 * g * g
        #expect(labelsF.count == b * pixels)

        // The trainer's step (Trainer.accumulateGradients: parallel forward passes, the batch
        // loss, parallel backward passes summed in sample order).
        let params = head.parameters.map(\.1)
        for p in params { p.zeroGrad() }
        var inputs: [Tensor] = [], labels: [[Int]] = []
        for s in 0..<b {
            inputs.append(Tensor(shape: Array(emb.shape.dropFirst()), data: Array(emb.data[(s * plane)..<((s + 1) * plane)])))
            labels.append(labelsF.data[(s * pixels)..<((s + 1) * pixels)].map { Int($0) })
        }
        let loss = Trainer.accumulateGradients(head, embeddings: inputs, labels: labels)
        // The forward pass alone (no tape), the logits the step started from.
        var logits: [Float] = []
        for x in inputs {
            let out = Autograd.withoutGrad { head.forward(Variable(x)) }
            #expect(out.shape == [k, 4 * g, 4 * g])
            logits += out.value.data
        }

        let refLogits = try f.tensor("logits")
        let eLogits = Self.relative(Tensor(shape: refLogits.shape, data: logits), refLogits)
        #expect(eLogits <= Self.tolerance, "\(kind) logits: \(eLogits)")
        let eLoss = Self.relative(Tensor(shape: [1], data: [loss]), try f.tensor("loss"))
        #expect(eLoss <= Self.tolerance, "\(kind) loss \(loss): \(eLoss)")

        // Every parameter's gradient. Those that are identically zero in exact arithmetic
        // (an attention's key bias: softmax over keys ignores a per-query constant) are held
        // to the same tolerance relative to the step's largest gradient.
        let zero = Set((f.meta["zero_grad"] ?? "").split(separator: ",").map(String.init))
        var largest: Float = 0
        for (name, _) in head.parameters { largest = max(largest, try f.tensor("grad." + name).maxAbs) }
        var worst: (Float, String) = (0, "")
        for (name, v) in head.parameters {
            let ref = try f.tensor("grad." + name)
            let ours = try #require(v.grad, "\(kind) \(name) got no gradient")
            #expect(ours.shape == ref.shape, "\(name) gradient shape")
            let e = zero.contains(name) ? ours.maxAbs / largest : Self.relative(ours, ref)
            #expect(e <= Self.tolerance, "\(kind) gradient of \(name): \(e)")
            if e > worst.0 { worst = (e, name) }
        }
        print("HeadParity \(kind): logits \(eLogits), loss \(eLoss), worst gradient \(worst.0) (\(worst.1)), \(params.count) parameters")
        if kind == .autosam { #expect(zero.count == 7, "the fixture names the seven key biases: \(zero)") }
    }

    /// The AutoSAM head's fixed positional encoding equals the official PositionEmbeddingRandom.
    @Test func densePositionalEncodingMatches() throws {
        let f = try Fixture(.autosam)
        let g = try f.int("grid")
        let ours = PositionEmbeddingRandom(gaussian: try f.tensor("pe_gaussian")).dense(height: g, width: g)
        let e = Self.relative(ours, try f.tensor("dense_pe"))
        #expect(e <= 1e-5, "dense PE: \(e)")
    }
}
