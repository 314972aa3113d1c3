import NN
import Tensor

/// Randomly initialised encoder weights of any size, for benchmarks and demos without a
/// checkpoint (weights ~ N(0, 0.02), norms ~ 1, as a trained ViT's scales roughly are).
public enum RandomWeights {
    struct Generator {
        var base: SplitMix64
        init(state: UInt64) { base = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { base.next() }
        /// Approximately normal (sum of 4 uniforms), fast.
        mutating func normal(_ std: Float) -> Float {
            var s: Float = 0
            for _ in 0..<4 { s += Float(next() >> 40) / Float(1 << 24) }
            return (s - 2) * 1.7320508 * std
        }
    }

    /// `patchBiasStd` sets the spread of the patch embedding's bias. The neck's LayerNorms
    /// normalise each token over its channels, which for a token a * u (a patch of uniform
    /// intensity a) keeps only the sign of a; a bias comparable to the patch term keeps a's
    /// size in the token's direction, so a random encoder still tells tissues of different
    /// brightness apart (the embedded demo encoder uses 0.5).
    public static func imageEncoder(_ c: SAMConfig, seed: UInt64 = 0, patchBiasStd: Float = 0.02) -> ParameterStore {
        var g = Generator(state: seed)
        var t: [String: Tensor] = [:]
        func randn(_ shape: [Int], _ std: Float) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in g.normal(std) })
        }
        func ones(_ n: Int) -> Tensor { Tensor(shape: [n], data: (0..<n).map { _ in 1 + g.normal(0.05) }) }
        let e = c.embedDim, p = "image_encoder."
        t[p + "patch_embed.proj.weight"] = randn([e, 3, c.patchSize, c.patchSize], 0.02)
        t[p + "patch_embed.proj.bias"] = randn([e], patchBiasStd)
        t[p + "pos_embed"] = randn([1, c.gridSize, c.gridSize, e], 0.02)
        for i in 0..<c.depth {
            let b = p + "blocks.\(i)."
            let rel = c.globalAttentionIndexes.contains(i) ? c.gridSize : c.windowSize
            t[b + "norm1.weight"] = ones(e)
            t[b + "norm1.bias"] = randn([e], 0.02)
            t[b + "attn.qkv.weight"] = randn([3 * e, e], 0.02)
            t[b + "attn.qkv.bias"] = randn([3 * e], 0.02)
            t[b + "attn.proj.weight"] = randn([e, e], 0.02)
            t[b + "attn.proj.bias"] = randn([e], 0.02)
            t[b + "attn.rel_pos_h"] = randn([2 * rel - 1, c.headDim], 0.02)
            t[b + "attn.rel_pos_w"] = randn([2 * rel - 1, c.headDim], 0.02)
            t[b + "norm2.weight"] = ones(e)
            t[b + "norm2.bias"] = randn([e], 0.02)
            t[b + "mlp.lin1.weight"] = randn([c.mlpDim, e], 0.02)
            t[b + "mlp.lin1.bias"] = randn([c.mlpDim], 0.02)
            t[b + "mlp.lin2.weight"] = randn([e, c.mlpDim], 0.02)
            t[b + "mlp.lin2.bias"] = randn([e], 0.02)
        }
        let o = c.outChannels
        t[p + "neck.0.weight"] = randn([o, e, 1, 1], 0.02)
        t[p + "neck.1.weight"] = ones(o)
        t[p + "neck.1.bias"] = randn([o], 0.02)
        t[p + "neck.2.weight"] = randn([o, o, 3, 3], 0.02)
        t[p + "neck.3.weight"] = ones(o)
        t[p + "neck.3.bias"] = randn([o], 0.02)
        return ParameterStore(t)
    }

    /// Randomly initialised prompt encoder and mask decoder (`prompt_encoder.*`,
    /// `mask_decoder.*`) with PyTorch's default initialisation (uniform +-1/sqrt(fan_in) for
    /// linear and convolution layers, ones and zeros for norms, N(0, 1) for embeddings and the
    /// positional-encoding matrix): what an untrained SAM decoder starts from. Used when the
    /// encoder itself is random (the embedded demo), so that the AutoSAM head has a decoder
    /// to start from.
    public static func promptEncoderAndMaskDecoder(_ c: SAMConfig, seed: UInt64 = 0) -> [String: Tensor] {
        var g = Generator(state: seed &+ 0xDEC0DE)
        var t: [String: Tensor] = [:]
        func uniform(_ shape: [Int], fanIn: Int) -> Tensor {
            let bound = 1 / Float(fanIn).squareRoot()
            return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in (Float(g.next() >> 40) / Float(1 << 24) * 2 - 1) * bound })
        }
        func randn(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in g.normal(1) }) }
        func linear(_ name: String, _ out: Int, _ inp: Int) {
            t[name + ".weight"] = uniform([out, inp], fanIn: inp)
            t[name + ".bias"] = uniform([out], fanIn: inp)
        }
        func norm(_ name: String, _ n: Int) {
            t[name + ".weight"] = Tensor(repeating: 1, shape: [n])
            t[name + ".bias"] = Tensor(zeros: [n])
        }
        // PyTorch's ConvTranspose2d weight is [in, out, k, k] and its fan-in is out * k * k.
        func convT(_ name: String, _ inp: Int, _ out: Int) {
            t[name + ".weight"] = uniform([inp, out, 2, 2], fanIn: out * 4)
            t[name + ".bias"] = uniform([out], fanIn: out * 4)
        }
        let d = c.outChannels, mc = c.maskInChannels, tokens = c.multimaskOutputs + 1
        let pe = "prompt_encoder."
        t[pe + "pe_layer.positional_encoding_gaussian_matrix"] = randn([2, d / 2])
        for i in 0..<4 { t[pe + "point_embeddings.\(i).weight"] = randn([1, d]) }
        t[pe + "not_a_point_embed.weight"] = randn([1, d])
        t[pe + "no_mask_embed.weight"] = randn([1, d])
        t[pe + "mask_downscaling.0.weight"] = uniform([mc / 4, 1, 2, 2], fanIn: 4)
        t[pe + "mask_downscaling.0.bias"] = uniform([mc / 4], fanIn: 4)
        norm(pe + "mask_downscaling.1", mc / 4)
        t[pe + "mask_downscaling.3.weight"] = uniform([mc, mc / 4, 2, 2], fanIn: mc)
        t[pe + "mask_downscaling.3.bias"] = uniform([mc], fanIn: mc)
        norm(pe + "mask_downscaling.4", mc)
        t[pe + "mask_downscaling.6.weight"] = uniform([d, mc, 1, 1], fanIn: mc)
        t[pe + "mask_downscaling.6.bias"] = uniform([d], fanIn: mc)

        let md = "mask_decoder.", tr = md + "transformer."
        func attention(_ name: String, downsample: Int) {
            let i = d / downsample
            linear(name + ".q_proj", i, d)
            linear(name + ".k_proj", i, d)
            linear(name + ".v_proj", i, d)
            linear(name + ".out_proj", d, i)
        }
        for l in 0..<c.decoderDepth {
            let b = tr + "layers.\(l)."
            attention(b + "self_attn", downsample: 1)
            norm(b + "norm1", d)
            attention(b + "cross_attn_token_to_image", downsample: 2)
            norm(b + "norm2", d)
            linear(b + "mlp.lin1", c.decoderMLPDim, d)
            linear(b + "mlp.lin2", d, c.decoderMLPDim)
            norm(b + "norm3", d)
            norm(b + "norm4", d)
            attention(b + "cross_attn_image_to_token", downsample: 2)
        }
        attention(tr + "final_attn_token_to_image", downsample: 2)
        norm(tr + "norm_final_attn", d)
        t[md + "iou_token.weight"] = randn([1, d])
        t[md + "mask_tokens.weight"] = randn([tokens, d])
        convT(md + "output_upscaling.0", d, d / 4)
        norm(md + "output_upscaling.1", d / 4)
        convT(md + "output_upscaling.3", d / 4, d / 8)
        for h in 0..<tokens {
            let b = md + "output_hypernetworks_mlps.\(h).layers."
            linear(b + "0", d, d)
            linear(b + "1", d, d)
            linear(b + "2", d / 8, d)
        }
        let dims = [d] + Array(repeating: c.iouHeadHiddenDim, count: c.iouHeadDepth - 1) + [tokens]
        for l in 0..<c.iouHeadDepth { linear(md + "iou_prediction_head.layers.\(l)", dims[l + 1], dims[l]) }
        return t
    }
}
