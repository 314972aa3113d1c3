import Foundation
import NN
import SegmentAnything
import Tensor

/// The prompt encoder and mask decoder tensors (`prompt_encoder.*`, `mask_decoder.*`) that the
/// AutoSAM head starts from and the box-prompt baseline runs with.
///
/// For a checkpoint file they are the checkpoint's own. For a registered size name (the
/// embedded `demo` encoder has random weights and no checkpoint) they are seeded random
/// weights with PyTorch's default initialisation (Linear / conv: uniform +-1/sqrt(fan_in);
/// LayerNorm: ones and zeros; nn.Embedding: N(0, 1); the positional Gaussian: N(0, 1), SAM's
/// scale 1), so that every method runs on every encoder. Random decoder weights know nothing:
/// the box baseline on them measures only what a random decoder does with a box.
public enum DecoderWeights {
    public static func tensors(source: String, config c: SAMConfig, seed: UInt64 = 1) throws -> [String: Tensor] {
        if FileManager.default.fileExists(atPath: source) {
            return try SAMCheckpoint.tensors(source).filter { $0.key.hasPrefix("prompt_encoder.") || $0.key.hasPrefix("mask_decoder.") }
        }
        return random(c, seed: seed)
    }

    public static func random(_ c: SAMConfig, seed: UInt64) -> [String: Tensor] {
        var g = SplitMix64(seed: seed &+ 0xDEC0DE)
        func uniform() -> Float { Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 }
        func normal() -> Float {
            // Box-Muller
            let u1 = max(Double(g.next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(g.next() >> 11) / Double(1 << 53)
            return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        var t: [String: Tensor] = [:]
        func bounded(_ key: String, _ shape: [Int], fanIn: Int) {
            let b = 1 / Float(fanIn).squareRoot()
            t[key] = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in uniform() * b })
        }
        func linear(_ key: String, out: Int, in n: Int) {
            bounded(key + ".weight", [out, n], fanIn: n)
            bounded(key + ".bias", [out], fanIn: n)
        }
        func norm(_ key: String, _ n: Int) {
            t[key + ".weight"] = Tensor(repeating: 1, shape: [n])
            t[key + ".bias"] = Tensor(zeros: [n])
        }
        func gaussian(_ key: String, _ shape: [Int]) { t[key] = Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in normal() }) }
        let d = c.outChannels, mc = c.maskInChannels, m = c.multimaskOutputs + 1
        // Prompt encoder
        let pe = "prompt_encoder."
        gaussian(pe + "pe_layer.positional_encoding_gaussian_matrix", [2, d / 2])
        for i in 0..<4 { gaussian(pe + "point_embeddings.\(i).weight", [1, d]) }
        gaussian(pe + "not_a_point_embed.weight", [1, d])
        gaussian(pe + "no_mask_embed.weight", [1, d])
        bounded(pe + "mask_downscaling.0.weight", [mc / 4, 1, 2, 2], fanIn: 4)
        bounded(pe + "mask_downscaling.0.bias", [mc / 4], fanIn: 4)
        norm(pe + "mask_downscaling.1", mc / 4)
        bounded(pe + "mask_downscaling.3.weight", [mc, mc / 4, 2, 2], fanIn: mc)
        bounded(pe + "mask_downscaling.3.bias", [mc], fanIn: mc)
        norm(pe + "mask_downscaling.4", mc)
        bounded(pe + "mask_downscaling.6.weight", [d, mc, 1, 1], fanIn: mc)
        bounded(pe + "mask_downscaling.6.bias", [d], fanIn: mc)
        // Mask decoder: two-way transformer (attention downsample 2 for the cross attentions)
        let md = "mask_decoder."
        func attention(_ key: String, inner: Int) {
            linear(key + ".q_proj", out: inner, in: d)
            linear(key + ".k_proj", out: inner, in: d)
            linear(key + ".v_proj", out: inner, in: d)
            linear(key + ".out_proj", out: d, in: inner)
        }
        for i in 0..<c.decoderDepth {
            let b = md + "transformer.layers.\(i)"
            attention(b + ".self_attn", inner: d)
            norm(b + ".norm1", d)
            attention(b + ".cross_attn_token_to_image", inner: d / 2)
            norm(b + ".norm2", d)
            linear(b + ".mlp.lin1", out: c.decoderMLPDim, in: d)
            linear(b + ".mlp.lin2", out: d, in: c.decoderMLPDim)
            norm(b + ".norm3", d)
            norm(b + ".norm4", d)
            attention(b + ".cross_attn_image_to_token", inner: d / 2)
        }
        attention(md + "transformer.final_attn_token_to_image", inner: d / 2)
        norm(md + "transformer.norm_final_attn", d)
        gaussian(md + "iou_token.weight", [1, d])
        gaussian(md + "mask_tokens.weight", [m, d])
        // ConvTranspose2d: PyTorch's fan_in is weight.size(1) * k * k = out channels * 4.
        bounded(md + "output_upscaling.0.weight", [d, d / 4, 2, 2], fanIn: d / 4 * 4)
        bounded(md + "output_upscaling.0.bias", [d / 4], fanIn: d / 4 * 4)
        norm(md + "output_upscaling.1", d / 4)
        bounded(md + "output_upscaling.3.weight", [d / 4, d / 8, 2, 2], fanIn: d / 8 * 4)
        bounded(md + "output_upscaling.3.bias", [d / 8], fanIn: d / 8 * 4)
        for i in 0..<m {
            let h = md + "output_hypernetworks_mlps.\(i).layers"
            linear(h + ".0", out: d, in: d)
            linear(h + ".1", out: d, in: d)
            linear(h + ".2", out: d / 8, in: d)
        }
        let dims = [d] + [Int](repeating: c.iouHeadHiddenDim, count: c.iouHeadDepth - 1) + [m]
        for i in 0..<c.iouHeadDepth { linear(md + "iou_prediction_head.layers.\(i)", out: dims[i + 1], in: dims[i]) }
        return t
    }
}
