import NN
import Tensor

// Port of segment-anything `modeling/transformer.py` (TwoWayTransformer, TwoWayAttentionBlock,
// Attention) and `MLPBlock` from `modeling/common.py` (facebookresearch/segment-anything,
// commit dca509fe793f601edb92606367a655c15ac00fdf). Batch size 1: tokens are [N, C] row-major
// (the PyTorch [B, N, C] layout with B = 1).

/// The decoder's multi-head attention (`Attention`): q/k/v projected to an internal width
/// embeddingDim / downsampleRate, split into heads, softmax(q k^T / sqrt(headDim)) v, output
/// projection back to embeddingDim.
public struct DecoderAttention: Sendable {
    public let heads: Int
    public let internalDim: Int
    let qW: Tensor, qB: Tensor, kW: Tensor, kB: Tensor, vW: Tensor, vB: Tensor
    let outW: Tensor, outB: Tensor

    public init(embeddingDim e: Int, heads: Int, downsampleRate: Int = 1, weights s: ParameterStore.Scope) throws {
        let i = e / downsampleRate
        precondition(i % heads == 0, "attention: \(heads) heads do not divide the internal width \(i)")
        self.heads = heads
        internalDim = i
        qW = try s.take("q_proj.weight", shape: [i, e]); qB = try s.take("q_proj.bias", shape: [i])
        kW = try s.take("k_proj.weight", shape: [i, e]); kB = try s.take("k_proj.bias", shape: [i])
        vW = try s.take("v_proj.weight", shape: [i, e]); vB = try s.take("v_proj.bias", shape: [i])
        outW = try s.take("out_proj.weight", shape: [e, i]); outB = try s.take("out_proj.bias", shape: [e])
    }

    /// q[Nq, C], k[Nk, C], v[Nk, C] -> [Nq, C].
    public func callAsFunction(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
        let qp = GEMM.linear(q, weight: qW, bias: qB)  // [Nq, I]
        let kp = GEMM.linear(k, weight: kW, bias: kB)  // [Nk, I]
        let vp = GEMM.linear(v, weight: vW, bias: vB)  // [Nk, I]
        let nq = qp.shape[0], nk = kp.shape[0], i = internalDim, hd = i / heads
        let scale = Float(hd).squareRoot()
        var out = [Float](repeating: 0, count: nq * i)  // heads side by side: [Nq, heads * hd]
        var scores = [Float](repeating: 0, count: nq * nk)
        qp.data.withUnsafeBufferPointer { qb in
            kp.data.withUnsafeBufferPointer { kb in
                vp.data.withUnsafeBufferPointer { vb in
                    out.withUnsafeMutableBufferPointer { ob in
                        scores.withUnsafeMutableBufferPointer { sb in
                            let s = sb.baseAddress!
                            for h in 0..<heads {
                                // Head h is the column slice h*hd..<(h+1)*hd of each projection
                                // ([N, I] viewed as [N, heads, hd], i.e. _separate_heads).
                                let col = h * hd
                                // scores[Nq, Nk] = q_h @ k_h^T, then / sqrt(hd) as the reference divides.
                                GEMM.sgemm(false, true, m: nq, n: nk, k: hd, a: qb.baseAddress! + col, lda: i,
                                           b: kb.baseAddress! + col, ldb: i, c: s, ldc: nk)
                                for j in 0..<(nq * nk) { s[j] /= scale }
                                Ops.softmaxRows(s, rows: nq, n: nk)
                                // out_h[Nq, hd] = scores @ v_h, written into the head's columns
                                // (_recombine_heads).
                                GEMM.sgemm(false, false, m: nq, n: hd, k: nk, a: s, lda: nk,
                                           b: vb.baseAddress! + col, ldb: i, c: ob.baseAddress! + col, ldc: i)
                            }
                        }
                    }
                }
            }
        }
        return GEMM.linear(Tensor(shape: [nq, i], data: out), weight: outW, bias: outB)
    }
}

/// `MLPBlock`: lin1 -> activation -> lin2 (ReLU in the decoder transformer).
public struct MLPBlock: Sendable {
    let lin1W: Tensor, lin1B: Tensor, lin2W: Tensor, lin2B: Tensor

    public init(embeddingDim e: Int, mlpDim m: Int, weights s: ParameterStore.Scope) throws {
        lin1W = try s.take("lin1.weight", shape: [m, e]); lin1B = try s.take("lin1.bias", shape: [m])
        lin2W = try s.take("lin2.weight", shape: [e, m]); lin2B = try s.take("lin2.bias", shape: [e])
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = GEMM.linear(x, weight: lin1W, bias: lin1B)
        Ops.relu(&h)
        return GEMM.linear(h, weight: lin2W, bias: lin2B)
    }
}

/// An nn.LayerNorm's weights (the decoder transformer's eps is PyTorch's default, 1e-5).
struct LayerNormWeights: Sendable {
    let weight: Tensor, bias: Tensor
    static let eps: Float = 1e-5

    init(_ s: ParameterStore.Scope, _ name: String, dim: Int) throws {
        weight = try s.take(name + ".weight", shape: [dim])
        bias = try s.take(name + ".bias", shape: [dim])
    }

    func apply(_ x: inout Tensor) { Ops.layerNorm(&x, weight: weight, bias: bias, eps: Self.eps) }
}

/// `TwoWayAttentionBlock`: token self-attention, tokens -> image cross-attention, MLP on the
/// tokens, image -> tokens cross-attention; post-norm after each.
struct TwoWayAttentionBlock: Sendable {
    let selfAttn: DecoderAttention
    let norm1: LayerNormWeights
    let crossTokenToImage: DecoderAttention
    let norm2: LayerNormWeights
    let mlp: MLPBlock
    let norm3: LayerNormWeights
    let norm4: LayerNormWeights
    let crossImageToToken: DecoderAttention
    /// The first block gives its self-attention no PE and no residual.
    let skipFirstLayerPE: Bool

    init(embeddingDim e: Int, heads: Int, mlpDim: Int, downsampleRate: Int, skipFirstLayerPE: Bool,
         weights s: ParameterStore.Scope) throws {
        selfAttn = try DecoderAttention(embeddingDim: e, heads: heads, weights: s.scoped("self_attn"))
        norm1 = try LayerNormWeights(s, "norm1", dim: e)
        crossTokenToImage = try DecoderAttention(
            embeddingDim: e, heads: heads, downsampleRate: downsampleRate, weights: s.scoped("cross_attn_token_to_image"))
        norm2 = try LayerNormWeights(s, "norm2", dim: e)
        mlp = try MLPBlock(embeddingDim: e, mlpDim: mlpDim, weights: s.scoped("mlp"))
        norm3 = try LayerNormWeights(s, "norm3", dim: e)
        norm4 = try LayerNormWeights(s, "norm4", dim: e)
        crossImageToToken = try DecoderAttention(
            embeddingDim: e, heads: heads, downsampleRate: downsampleRate, weights: s.scoped("cross_attn_image_to_token"))
        self.skipFirstLayerPE = skipFirstLayerPE
    }

    /// queries[N, C], keys[hw, C]; queryPE like queries, keyPE like keys.
    func callAsFunction(queries: inout Tensor, keys: inout Tensor, queryPE: Tensor, keyPE: Tensor) {
        // Self-attention of the tokens.
        if skipFirstLayerPE {
            queries = selfAttn(q: queries, k: queries, v: queries)
        } else {
            var q = queries
            Ops.add(&q, queryPE)
            Ops.add(&queries, selfAttn(q: q, k: q, v: queries))
        }
        norm1.apply(&queries)
        // Tokens attend to the image.
        var q = queries
        Ops.add(&q, queryPE)
        var k = keys
        Ops.add(&k, keyPE)
        Ops.add(&queries, crossTokenToImage(q: q, k: k, v: keys))
        norm2.apply(&queries)
        // MLP on the tokens.
        Ops.add(&queries, mlp(queries))
        norm3.apply(&queries)
        // The image attends to the tokens (k, the image with PE, is unchanged since above).
        q = queries
        Ops.add(&q, queryPE)
        Ops.add(&keys, crossImageToToken(q: k, k: q, v: queries))
        norm4.apply(&keys)
    }
}

/// `TwoWayTransformer`: a decoder in which tokens (with their own PE) and the image embedding
/// (with the dense PE) attend to each other, then a final token -> image attention.
public struct TwoWayTransformer: Sendable {
    public let depth: Int
    public let embeddingDim: Int
    let layers: [TwoWayAttentionBlock]
    let finalAttnTokenToImage: DecoderAttention
    let normFinalAttn: LayerNormWeights

    /// Loads `<prefix>.layers.<i>.*`, `<prefix>.final_attn_token_to_image.*` and
    /// `<prefix>.norm_final_attn.*`, strictly.
    public init(depth: Int, embeddingDim e: Int, heads: Int, mlpDim: Int, attentionDownsampleRate: Int = 2,
                weights s: ParameterStore.Scope) throws {
        self.depth = depth
        embeddingDim = e
        layers = try (0..<depth).map { i in
            try TwoWayAttentionBlock(
                embeddingDim: e, heads: heads, mlpDim: mlpDim, downsampleRate: attentionDownsampleRate,
                skipFirstLayerPE: i == 0, weights: s.scoped("layers.\(i)"))
        }
        finalAttnTokenToImage = try DecoderAttention(
            embeddingDim: e, heads: heads, downsampleRate: attentionDownsampleRate,
            weights: s.scoped("final_attn_token_to_image"))
        normFinalAttn = try LayerNormWeights(s, "norm_final_attn", dim: e)
    }

    /// The SAM mask decoder's transformer (`mask_decoder.transformer.*` by default).
    public init(config c: SAMConfig, weights store: ParameterStore, prefix: String = "mask_decoder.transformer") throws {
        try self.init(depth: c.decoderDepth, embeddingDim: c.outChannels, heads: c.decoderHeads, mlpDim: c.decoderMLPDim,
                      weights: store.scoped(prefix))
    }

    /// Each block's outputs, for parity checks against the reference.
    public struct Trace {
        public var layers: [(queries: Tensor, keys: Tensor)] = []
        public init() {}
    }

    /// image[C, h, w], imagePE[C, h, w], tokens[N, C] -> (queries[N, C], keys[h*w, C]).
    public func callAsFunction(image: Tensor, imagePE: Tensor, tokens: Tensor,
                               trace: UnsafeMutablePointer<Trace>? = nil) -> (queries: Tensor, keys: Tensor) {
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        precondition(c == embeddingDim && imagePE.shape == image.shape, "transformer: image \(image.shape), PE \(imagePE.shape)")
        precondition(tokens.rank == 2 && tokens.shape[1] == c, "transformer: tokens \(tokens.shape)")
        // [C, h, w] -> [C, h*w] -> [h*w, C] (flatten(2).permute(0, 2, 1) with B = 1)
        var keys = image.reshaped([c, h * w]).permuted([1, 0])
        let keyPE = imagePE.reshaped([c, h * w]).permuted([1, 0])
        var queries = tokens
        for layer in layers {
            layer(queries: &queries, keys: &keys, queryPE: tokens, keyPE: keyPE)
            trace?.pointee.layers.append((queries, keys))
        }
        // Final attention from the tokens to the image.
        var q = queries
        Ops.add(&q, tokens)
        var k = keys
        Ops.add(&k, keyPE)
        Ops.add(&queries, finalAttnTokenToImage(q: q, k: k, v: keys))
        normFinalAttn.apply(&queries)
        return (queries, keys)
    }
}
