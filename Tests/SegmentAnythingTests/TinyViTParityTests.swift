import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// TinyViT (LiteMedSAM's encoder) against the official `tiny_vit_sam.py`, fixtures made by
/// scripts/fixtures/make_litemedsam_fixtures.py: (a) a small random TinyViT (windows that need
/// padding, a stride-1 last merge, BatchNorms that are not identities), every stage checked;
/// (b) the real LiteMedSAM checkpoint on a cardiac-like slice, whenever the weights are present
/// (CI requires them: AUTOSAM_REQUIRE_WEIGHTS=1).
@Suite struct TinyViTParityTests {
    static let folder = SAMFixture.folder

    @Test func smallRandomTinyViTMatchesTheOfficialEncoderAtEveryStage() throws {
        let tensors = try TorchCheckpoint.load("\(Self.folder)/tinyvit_small.pth")
        var config = try SAMCheckpoint.inferConfig(tensors, name: "tinyvit_small")
        let tiny = try #require(config.tinyViT)
        #expect(tiny.embedDims == [8, 24, 32, 40] && tiny.depths == [2, 2, 1, 1])
        #expect(Array(tiny.numHeads[1...]) == [3, 2, 4] && Array(tiny.windowSizes[1...]) == [6, 4, 5])
        #expect(config.outChannels == 32)
        config.imageSize = 40
        let store = ParameterStore(tensors)
        let encoder = try TinyViTEncoder(config: config, weights: store)
        store.ignore(prefix: "prompt_encoder.")
        store.ignore(prefix: "mask_decoder.")
        try store.finish()  // every encoder tensor used, the BatchNorm counters included

        let io = try SafeTensors.load("\(Self.folder)/tinyvit_small_io.safetensors").tensors
        func ref(_ k: String) throws -> Tensor { try #require(io[k], "fixture tensor \(k)") }
        var trace = TinyViTEncoder.Trace()
        let out = encoder.run(try ref("image").reshaped([3, 40, 40]), trace: &trace)
        func check(_ ours: Tensor?, _ key: String) throws {
            let r = try ref(key)
            let o = try #require(ours, "no \(key) in the trace")
            #expect(o.count == r.count, "\(key): \(o.shape) vs \(r.shape)")
            guard o.count == r.count else { return }
            let e = relativeError(o, r)
            #expect(e <= parityTolerance, "\(key): \(e)")
        }
        try check(trace.patchEmbed, "patch_embed")
        for (i, key) in ["block_0_0", "block_0_1", "block_1_0", "block_1_1", "block_2_0", "block_3_0"].enumerated() {
            try check(trace.blocks[i], key)
        }
        for l in 0..<4 { try check(trace.stages[l], "layer_\(l)") }
        try check(out, "neck")
        #expect(out.shape == [32, 10, 10])
        print("tinyvit_small: neck max abs error \(relativeError(out, try ref("neck"))) of the reference's max magnitude")
        // The first stage runs in bands of output rows (32 by default: the 40-row image is two
        // bands, its stride-2 merge one); bands of 3 rows put band edges everywhere.
        var narrow = encoder
        narrow.bandRows = 3
        var narrowTrace = TinyViTEncoder.Trace()
        let narrowOut = narrow.run(try ref("image").reshaped([3, 40, 40]), trace: &narrowTrace)
        for l in 0..<4 { try check(narrowTrace.stages[l], "layer_\(l)") }
        #expect(relativeError(narrowOut, out) <= 1e-6)
    }

    /// The pair-bias table: TinyViT's attention_bias_idxs is not saved; it is rebuilt as
    /// |dy| * ws + |dx| and must give the official per-pair biases.
    @Test func attentionBiasesAreIndexedAsTheOfficialModelDoes() throws {
        let tensors = try TorchCheckpoint.load("\(Self.folder)/tinyvit_small.pth")
        let io = try SafeTensors.load("\(Self.folder)/tinyvit_small_io.safetensors").tensors
        for (layer, heads, ws) in [(1, 3, 6), (2, 2, 4), (3, 4, 5)] {
            let table = try #require(tensors["image_encoder.layers.\(layer).blocks.0.attn.attention_biases"])
            let ours = TinyViTEncoder.pairBias(table, heads: heads, window: ws)
            let official = try #require(io["block_\(layer)_0_attn_bias"])
            #expect(ours == official.data, "layer \(layer)")
        }
    }

    /// LiteMedSAM's own weights, fetched by scripts/fetch_weights.sh.
    static var liteMedSAMPath: String? {
        let env = ProcessInfo.processInfo.environment
        let dir = env["AUTOSAM_WEIGHTS_DIR"] ?? ((env["XDG_DATA_HOME"] ?? (NSHomeDirectory() + "/.local/share")) + "/autosam/weights")
        let path = dir + "/lite_medsam.pth"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    static let weightsRequired = ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_WEIGHTS"] == "1"

    /// The real checkpoint's tensors; nil (a recorded failure where CI requires the weights)
    /// when they are not on this machine.
    static func liteMedSAMTensors() throws -> [String: Tensor]? {
        guard let path = liteMedSAMPath else {
            if weightsRequired { Issue.record("lite_medsam.pth is not in the weights folder: run scripts/fetch_weights.sh") }
            return nil
        }
        return try TorchCheckpoint.load(path)
    }

    @Test func theRealLiteMedSAMEncoderMatchesTheOfficialEmbedding() throws {
        guard let tensors = try Self.liteMedSAMTensors() else { return }
        let config = try SAMCheckpoint.inferConfig(tensors)
        #expect(config.name == "litemedsam" && config.tinyViT == .liteMedSAM && config.imageSize == 256 && config.gridSize == 64)
        let store = ParameterStore(tensors)
        let encoder = try TinyViTEncoder(config: config, weights: store)
        store.ignore(prefix: "prompt_encoder.")
        store.ignore(prefix: "mask_decoder.")
        try store.finish()
        let io = try SafeTensors.load("\(Self.folder)/litemedsam_slice_io.safetensors").tensors
        let image = try #require(io["image"]).reshaped([3, 256, 256])
        let official = try #require(io["embedding"])
        let out = encoder.encode(image)
        #expect(out.shape == [256, 64, 64])
        // The stored embedding is float16 (rounding up to 2.4e-4 of its magnitude).
        let e = relativeError(out, official)
        print("litemedsam: embedding max abs error \(e) of the official embedding's max magnitude \(official.maxAbs)")
        #expect(e <= 5e-4, "\(e)")
    }

    /// LiteMedSAM's own prompt encoder and mask decoder (SAM's, at a 256-pixel input) with one
    /// box, on the stored embedding, as the official inference calls them (multimask off).
    @Test func theRealLiteMedSAMDecoderMatchesTheOfficialMaskForABox() throws {
        guard let tensors = try Self.liteMedSAMTensors() else { return }
        let config = try SAMCheckpoint.inferConfig(tensors)
        let store = ParameterStore(tensors)
        let prompts = try PromptEncoder(config: config, weights: store)
        let decoder = try MaskDecoder(config: config, weights: store)
        store.ignore(prefix: "image_encoder.")
        try store.finish()
        let io = try SafeTensors.load("\(Self.folder)/litemedsam_slice_io.safetensors").tensors
        let embedding = try #require(io["embedding"]).reshaped([256, 64, 64])
        let box = try #require(io["box"]).reshaped([4])
        let (sparse, dense) = prompts(box: box)
        let e1 = relativeError(sparse, try #require(io["sparse"]))
        #expect(e1 <= parityTolerance, "sparse \(e1)")
        let officialDense = try #require(io["dense"]).data  // one vector, broadcast over the grid
        #expect(dense.shape == [256, 64, 64])
        var denseErr: Float = 0
        for c in 0..<256 { for i in 0..<(64 * 64) { denseErr = max(denseErr, abs(dense.data[c * 4096 + i] - officialDense[c])) } }
        #expect(denseErr <= 1e-6, "dense \(denseErr)")
        let (masks, iou) = decoder(
            imageEmbedding: embedding, imagePE: prompts.densePositionalEncoding(), sparse: sparse, dense: dense, multimaskOutput: false)
        let logits = try #require(io["low_res_logits"])
        let e2 = relativeError(masks, logits)
        let e3 = relativeError(iou, try #require(io["iou"]))
        print("litemedsam decoder: low-res logits max abs error \(e2) of the official max magnitude \(logits.maxAbs); IoU \(e3)")
        #expect(masks.count == logits.count && e2 <= parityTolerance, "logits \(e2)")
        #expect(e3 <= parityTolerance, "iou \(e3)")
        // And the mask itself: the same pixels above 0.
        #expect(zip(masks.data, logits.data).filter { ($0 > 0) != ($1 > 0) }.count == 0)
    }
}
