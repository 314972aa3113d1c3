import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

@Suite struct ImageEncoderParityTests {
    @Test(arguments: ["tiny_a", "tiny_b"])
    func matchesTheOfficialEncoder(name: String) throws {
        let f = try SAMFixture(name)
        let encoder = try ImageEncoderViT(config: f.config, weights: f.store)
        let image = try f.tensor("image")
        let s = f.config.imageSize, g = f.config.gridSize
        var trace = ImageEncoderViT.Trace()
        let out = encoder(image.reshaped([3, s, s]), trace: &trace)
        let e1 = relativeError(trace.patchEmbed!, try f.tensor("patch_embed"))
        #expect(e1 <= parityTolerance, "\(name) patch_embed \(e1)")
        let e2 = relativeError(trace.posAdded!, try f.tensor("pos_added"))
        #expect(e2 <= parityTolerance, "\(name) pos_added \(e2)")
        for i in 0..<f.config.depth {
            let e = relativeError(trace.blocks[i], try f.tensor("block_\(i)"))
            #expect(e <= parityTolerance, "\(name) block \(i): \(e)")
        }
        let neck = try f.tensor("neck")
        #expect(out.shape == [f.config.outChannels, g, g])
        let e = relativeError(out, neck)
        #expect(e <= parityTolerance, "\(name) neck \(e)")
        print("\(name): image embedding max abs error \(e) of the reference's max magnitude \(neck.maxAbs)")
    }

    @Test func checkpointLoadingIsStrict() throws {
        let f = try SAMFixture("tiny_a")
        var t = f.store.tensors
        // Wrong shape.
        var bad = t
        bad["image_encoder.blocks.0.attn.proj.weight"] = Tensor(zeros: [3, 3])
        #expect(throws: CheckpointError.shapeMismatch(key: "image_encoder.blocks.0.attn.proj.weight", expected: [48, 48], found: [3, 3])) {
            _ = try ImageEncoderViT(config: f.config, weights: ParameterStore(bad))
        }
        // Missing key.
        bad = t
        bad["image_encoder.neck.2.weight"] = nil
        #expect(throws: CheckpointError.missingKey("image_encoder.neck.2.weight")) {
            _ = try ImageEncoderViT(config: f.config, weights: ParameterStore(bad))
        }
        // Extra key: loading the encoder alone leaves the others; finish() names them.
        t["image_encoder.blocks.0.attn.surprise"] = Tensor(zeros: [1])
        let store = ParameterStore(t)
        _ = try ImageEncoderViT(config: f.config, weights: store)
        store.ignore(prefix: "prompt_encoder.")
        store.ignore(prefix: "mask_decoder.")
        #expect(throws: CheckpointError.unexpectedKeys(["image_encoder.blocks.0.attn.surprise"])) { try store.finish() }
    }
}

@Suite struct RegistryTests {
    /// Random weights of every registered size load strictly and run; sizes follow build_sam.py.
    @Test func everySizeBuildsFromOneRegistry() throws {
        #expect(SAMConfig.vitB.embedDim == 768 && SAMConfig.vitB.depth == 12 && SAMConfig.vitB.globalAttentionIndexes == [2, 5, 8, 11])
        #expect(SAMConfig.vitL.embedDim == 1024 && SAMConfig.vitL.depth == 24 && SAMConfig.vitL.globalAttentionIndexes == [5, 11, 17, 23])
        #expect(SAMConfig.vitH.embedDim == 1280 && SAMConfig.vitH.depth == 32 && SAMConfig.vitH.numHeads == 16)
        for name in ["tiny", "demo"] {
            let c = try #require(SAMConfig.named(name))
            let store = RandomWeights.imageEncoder(c, seed: 3)
            let encoder = try ImageEncoderViT(config: c, weights: store)
            try store.finish()
            let out = encoder(Tensor(repeating: 0.1, shape: [3, c.imageSize, c.imageSize]))
            #expect(out.shape == [c.outChannels, c.gridSize, c.gridSize])
            #expect(out.data.allSatisfy { $0.isFinite })
            // The inferred config of its own weights is the same size.
            let inferred = try SAMCheckpoint.inferConfig(store.tensors)
            #expect(inferred.embedDim == c.embedDim && inferred.numHeads == c.numHeads && inferred.windowSize == c.windowSize)
        }
    }
}
