import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// The differentiable AutoSAM head against the parity-proven inference decoder: for each class,
/// the head must equal SAM's mask decoder run with that class's tokens, no prompts and no
/// dense prompt embedding (the official modules' semantics; fixtures from segment_anything).
@Suite struct AutoSAMHeadTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("SegmentAnythingTests/Fixtures").path

    func load(_ name: String) throws -> ([String: Tensor], SAMConfig, Tensor) {
        let t = try TorchCheckpoint.load("\(Self.fixtures)/\(name).pth")
        var c = try SAMCheckpoint.inferConfig(t, name: name)
        c.decoderHeads = 4  // the fixtures' decoder (tiny_a.json: transformer num_heads)
        let neck = try SafeTensors.load("\(Self.fixtures)/\(name)_io.safetensors").tensors["neck"]!
        return (t, c, neck.reshaped(Array(neck.shape.dropFirst())))
    }

    @Test(arguments: ["tiny_a", "tiny_b"])
    func equalsTheDecoderWithClassTokens(name: String) throws {
        let (t, c, neck) = try load(name)
        let head = try AutoSAMHead(sam: t, config: c, classes: 3, seed: 4)
        let logits = Autograd.withoutGrad { head.forward(Variable(neck)) }.value
        let g = c.gridSize
        #expect(logits.shape == [3, 4 * g, 4 * g])
        let store = ParameterStore(t)
        let decoder = try MaskDecoder(config: c, weights: store)
        let pe = try PromptEncoder(config: c, weights: store).densePositionalEncoding()
        let p = Dictionary(uniqueKeysWithValues: head.parameters)
        for cls in 0..<3 {
            let d = c.outChannels
            let iou: [Float] = Array(p["class_iou_tokens"]!.value.data[(cls * d)..<((cls + 1) * d)])
            let masks: [Float] = Array(p["class_mask_tokens"]!.value.data[(2 * cls * d)..<((2 * cls + 2) * d)])
            let tokens = Tensor(shape: [3, d], data: iou + masks)
            let ref = decoder.decode(outputTokens: tokens, promptTokens: nil, imageEmbedding: neck, imagePE: pe, denseEmbedding: nil,
                                     hypernetworks: [decoder.hypernetworks[0]], hypernetworkTokens: [1]).masks
            let plane = 16 * g * g
            let ours = Tensor(shape: [plane], data: Array(logits.data[(cls * plane)..<((cls + 1) * plane)]))
            let e = ours.maxAbsDifference(ref.reshaped([plane])) / max(ref.maxAbs, 1e-12)
            #expect(e <= 1e-4, "\(name) class \(cls): \(e)")
        }
    }

    @Test func gradientsMatchFiniteDifferences() throws {
        let (t, c, neck) = try load("tiny_a")
        let head = try AutoSAMHead(sam: t, config: c, classes: 2, seed: 1)
        let labels = (0..<(16 * c.gridSize * c.gridSize)).map { ($0 / 7) % 2 }
        func loss() -> Float { Autograd.withoutGrad { Trainer.loss(head.forward(Variable(neck)), labels: labels) }.value.data[0] }
        let l = Trainer.loss(head.forward(Variable(neck)), labels: labels)
        l.backward()
        let p = Dictionary(uniqueKeysWithValues: head.parameters)
        var worst: Float = 0
        for name in ["class_mask_tokens", "transformer.layers.0.cross_attn_token_to_image.q_proj.weight", "output_upscaling.0.weight",
                     "output_hypernetworks_mlps.0.layers.2.bias", "transformer.norm_final_attn.bias"] {
            let v = p[name]!
            let g = try #require(v.grad, "\(name) has no gradient")
            for i in [0, v.value.count / 2, v.value.count - 1] {
                let eps: Float = 1e-2, old = v.value.data[i]
                v.value.data[i] = old + eps
                let up = loss()
                v.value.data[i] = old - eps
                let down = loss()
                v.value.data[i] = old
                let numeric = (up - down) / (2 * eps)
                worst = max(worst, abs(g.data[i] - numeric) / max(1e-2, abs(numeric) + abs(g.data[i])))
            }
        }
        #expect(worst < 0.05, "worst relative gradient error \(worst)")
    }
}

extension AutoSAMHeadTests {
    @Test func savedAutoSAMHeadReloadsToIdenticalLogits() throws {
        let (t, c, neck) = try load("tiny_b")
        let head = try AutoSAMHead(sam: t, config: c, classes: 4, seed: 2)
        let dir = NSTemporaryDirectory() + "autosam-head-\(UUID().uuidString.prefix(8))"
        let meta = HeadMetadata(
            kind: .autosam, classes: ["background", "RV", "Myo", "LV"], inChannels: c.outChannels, encoder: "fixture", encoderSize: "tiny_b",
            plan: .paper(encoderSize: c.imageSize), trainingPatients: [], validationPatients: [], validationDice: 0, epochs: 0,
            options: TrainingOptions(), created: "now", software: "test", decoderHeads: 4, decoderDepth: c.decoderDepth)
        try HeadModel.save(head, metadata: meta, to: dir)
        let (loaded, _) = try HeadModel.load(dir)
        let a = Autograd.withoutGrad { head.forward(Variable(neck)) }.value
        let b = Autograd.withoutGrad { loaded.forward(Variable(neck)) }.value
        #expect(a == b)
    }
}
