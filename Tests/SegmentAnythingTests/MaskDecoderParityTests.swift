import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

@Suite struct MaskDecoderParityTests {
    /// The decoder on the reference's image embedding, dense PE and prompt embeddings.
    @Test(arguments: ["tiny_a", "tiny_b"], ["a", "b", "c"])
    func matchesTheOfficialDecoder(name: String, promptCase c: String) throws {
        let f = try SAMFixture(name)
        let decoder = try MaskDecoder(config: f.config, weights: f.store)
        let neck = try f.tensor("neck"), pe = try f.tensor("dense_pe")
        let chw = Array(neck.shape.dropFirst())
        let sparse = try f.tensor("pe_\(c)_sparse"), dense = try f.tensor("pe_\(c)_dense")
        for multi in [true, false] {
            let (masks, iou) = decoder(
                imageEmbedding: neck.reshaped(chw), imagePE: pe.reshaped(chw),
                sparse: sparse.reshaped([-1, f.config.outChannels]), dense: dense.reshaped(chw), multimaskOutput: multi)
            let tag = multi ? "multi" : "single"
            #expect(masks.shape[0] == (multi ? 3 : 1))
            try expectParity(masks, f, "md_\(c)_\(tag)_masks")
            try expectParity(iou, f, "md_\(c)_\(tag)_iou")
        }
    }

    /// Prompts -> our prompt encoder -> our decoder, against the reference's outputs.
    @Test(arguments: ["tiny_a", "tiny_b"], ["a", "b", "c"])
    func promptsToMasksEndToEnd(name: String, promptCase c: String) throws {
        let f = try SAMFixture(name)
        let encoder = try PromptEncoder(config: f.config, weights: f.store)
        let decoder = try MaskDecoder(config: f.config, weights: f.store)
        let neck = try f.tensor("neck")
        let p = PromptCase(f, c)
        let (sparse, dense) = encoder(points: p.points, labels: p.labels, box: p.box, mask: p.mask)
        for multi in [true, false] {
            let (masks, iou) = decoder(
                imageEmbedding: neck.reshaped(Array(neck.shape.dropFirst())), imagePE: encoder.densePositionalEncoding(),
                sparse: sparse, dense: dense, multimaskOutput: multi)
            let tag = multi ? "multi" : "single"
            try expectParity(masks, f, "md_\(c)_\(tag)_masks")
            try expectParity(iou, f, "md_\(c)_\(tag)_iou")
        }
    }

    @Test(arguments: ["tiny_a", "tiny_b"])
    func transformerAndUpscalingIntermediates(name: String) throws {
        let f = try SAMFixture(name)
        let decoder = try MaskDecoder(config: f.config, weights: f.store)
        let neck = try f.tensor("neck"), pe = try f.tensor("dense_pe")
        let chw = Array(neck.shape.dropFirst())
        var trace = MaskDecoder.Trace()
        _ = decoder(
            imageEmbedding: neck.reshaped(chw), imagePE: pe.reshaped(chw),
            sparse: try f.tensor("pe_a_sparse").reshaped([-1, f.config.outChannels]),
            dense: try f.tensor("pe_a_dense").reshaped(chw), multimaskOutput: true, trace: &trace)
        #expect(trace.transformer.layers.count == f.config.decoderDepth)
        for (i, layer) in trace.transformer.layers.enumerated() {
            try expectParity(layer.queries, f, "md_a_tlayer_\(i)_queries")
            try expectParity(layer.keys, f, "md_a_tlayer_\(i)_keys")
        }
        try expectParity(trace.tokens!, f, "md_a_transformer_hs")
        try expectParity(trace.image!, f, "md_a_transformer_src")
        try expectParity(trace.upscaled!, f, "md_a_upscaled")
    }

    @Test(arguments: ["tiny_a", "tiny_b"])
    func postprocessMatchesTheOfficialOne(name: String) throws {
        let f = try SAMFixture(name)
        let post = f.json["postprocess"] as! [String: Any]
        let input = post["input_size"] as! [Int], original = post["original_size"] as! [Int]
        let low = try f.tensor("md_a_single_masks")
        let out = Postprocess.masks(
            low.reshaped(Array(low.shape.dropFirst())), imageSize: f.config.imageSize,
            inputSize: (input[0], input[1]), originalSize: (original[0], original[1]))
        #expect(out.shape == [1, original[0], original[1]])
        try expectParity(out, f, "post_a_single_masks")
    }

    @Test func loadingIsStrictAndUsesEveryKey() throws {
        let f = try SAMFixture("tiny_a")
        // All three parts together consume the whole checkpoint.
        let store = ParameterStore(f.store.tensors)
        _ = try ImageEncoderViT(config: f.config, weights: store)
        _ = try PromptEncoder(config: f.config, weights: store)
        _ = try MaskDecoder(config: f.config, weights: store)
        try store.finish()
        var bad = f.store.tensors
        bad["mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight"] = Tensor(zeros: [32, 32])
        #expect(throws: CheckpointError.shapeMismatch(
            key: "mask_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight", expected: [16, 32], found: [32, 32])) {
            _ = try MaskDecoder(config: f.config, weights: ParameterStore(bad))
        }
        bad = f.store.tensors
        bad["mask_decoder.output_hypernetworks_mlps.3.layers.2.bias"] = nil
        #expect(throws: CheckpointError.missingKey("mask_decoder.output_hypernetworks_mlps.3.layers.2.bias")) {
            _ = try MaskDecoder(config: f.config, weights: ParameterStore(bad))
        }
    }

    /// decode() with other output tokens (as the AutoSAM head will use it) reproduces
    /// predict_masks when given the same tokens.
    @Test func decodeWithArbitraryTokensMatchesPredictMasks() throws {
        let f = try SAMFixture("tiny_b")
        let decoder = try MaskDecoder(config: f.config, weights: f.store)
        let neck = try f.tensor("neck"), pe = try f.tensor("dense_pe")
        let chw = Array(neck.shape.dropFirst()), d = f.config.outChannels
        let sparse = try f.tensor("pe_b_sparse").reshaped([-1, d]), dense = try f.tensor("pe_b_dense").reshaped(chw)
        let (all, _) = decoder.predictMasks(imageEmbedding: neck.reshaped(chw), imagePE: pe.reshaped(chw), sparse: sparse, dense: dense)
        // Only mask tokens 2 and 0, no IoU token: different tokens, different masks; check shapes
        // and that the hypernetwork/token pairing follows the indexes.
        let tokens = Tensor(shape: [2, d], data: Array(decoder.maskTokens.data[(2 * d)..<(3 * d)] + decoder.maskTokens.data[0..<d]))
        let (hs, masks) = decoder.decode(
            outputTokens: tokens, promptTokens: sparse, imageEmbedding: neck.reshaped(chw), imagePE: pe.reshaped(chw),
            denseEmbedding: dense, hypernetworks: [decoder.hypernetworks[2], decoder.hypernetworks[0]], hypernetworkTokens: [0, 1])
        #expect(hs.shape == [2 + sparse.shape[0], d])
        #expect(masks.shape == [2] + Array(all.shape.dropFirst()))
        // With the full token set the generic path is predict_masks itself.
        let full = Tensor(shape: [5, d], data: decoder.iouToken.data + decoder.maskTokens.data)
        let (_, same) = decoder.decode(
            outputTokens: full, promptTokens: sparse, imageEmbedding: neck.reshaped(chw), imagePE: pe.reshaped(chw),
            denseEmbedding: dense, hypernetworks: decoder.hypernetworks, hypernetworkTokens: [1, 2, 3, 4])
        #expect(same == all)
    }
}
