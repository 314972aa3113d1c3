import NN
import Tensor

/// Randomly initialised encoder weights of any size, for benchmarks and demos without a
/// checkpoint (weights ~ N(0, 0.02), norms ~ 1, as a trained ViT's scales roughly are).
public enum RandomWeights {
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// Approximately normal (sum of 4 uniforms), fast.
        mutating func normal(_ std: Float) -> Float {
            var s: Float = 0
            for _ in 0..<4 { s += Float(next() >> 40) / Float(1 << 24) }
            return (s - 2) * 1.7320508 * std
        }
    }

    public static func imageEncoder(_ c: SAMConfig, seed: UInt64 = 0) -> ParameterStore {
        var g = Generator(state: seed)
        var t: [String: Tensor] = [:]
        func randn(_ shape: [Int], _ std: Float) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in g.normal(std) })
        }
        func ones(_ n: Int) -> Tensor { Tensor(shape: [n], data: (0..<n).map { _ in 1 + g.normal(0.05) }) }
        let e = c.embedDim, p = "image_encoder."
        t[p + "patch_embed.proj.weight"] = randn([e, 3, c.patchSize, c.patchSize], 0.02)
        t[p + "patch_embed.proj.bias"] = randn([e], 0.02)
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
}
