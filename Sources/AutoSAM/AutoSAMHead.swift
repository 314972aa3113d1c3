import Foundation
import NN
import SegmentAnything
import Tensor

// The AutoSAM head (Hu & Xu 2023; reference xhu248/AutoSAM models/sam_decoder.py): SAM's mask
// decoder without prompt tokens, with one IoU token and two mask tokens per class. Each class
// runs the two-way transformer on the image embedding with its own tokens; its first mask
// token, through the hypernetwork MLP, dotted with the 4x upscaled embedding, gives that
// class's logit map. Transformer, upscaling and hypernetwork start from SAM's mask decoder;
// the dense positional encoding is SAM's own prompt-encoder matrix (fixed).
// Semantics of the transformer follow segment-anything modeling/transformer.py (the first
// block's self-attention replaces the queries; LayerNorm eps 1e-5 there, 1e-6 in LayerNorm2d).
// For training speed the cross attentions are fused primitives that never project the 4096
// image tokens (Attention+Grad.swift), and the upscaling runs on channels-last pixels in
// sub-pixel order (two GEMMs), brought back to raster order once at the end. Forward, loss
// and gradients match the official modules (Tests/AutoSAMTests/HeadParityTests.swift).

public final class AutoSAMHead: SegmentationHead {
    public let kind = HeadKind.autosam
    public let classes: Int
    public let parameters: [(String, Variable)]
    let p: [String: Variable]
    /// The dense positional encoding as keys [g*g, D] for the configuration's grid g
    /// (computed once; other grid sizes compute theirs per call).
    let keyPE: (grid: Int, pe: Tensor)
    let gaussian: Tensor
    let heads: Int, depth: Int, dim: Int

    static let prefix = "mask_decoder."
    static let gaussianKey = "pe_gaussian"

    /// Rebuilds a saved head (HeadModel): the parameters under their saved names plus the
    /// positional-encoding matrix; values are then loaded strictly by the caller.
    convenience init(saved: [String: Tensor], classes: Int, heads: Int, depth: Int) throws {
        guard let g = saved[Self.gaussianKey] else { throw CheckpointError.missingKey(Self.gaussianKey) }
        var sam: [String: Tensor] = ["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": g]
        for (k, v) in saved where k != Self.gaussianKey && !k.hasPrefix("class_") { sam[Self.prefix + k] = v }
        var c = SAMConfig.vitB
        c.outChannels = 2 * g.shape[1]
        c.decoderHeads = heads
        c.decoderDepth = depth
        try self.init(sam: sam, config: c, classes: classes, seed: 0)
    }

    /// From a SAM checkpoint's tensors (mask decoder and prompt-encoder PE), with fresh tokens.
    public init(sam tensors: [String: Tensor], config c: SAMConfig, classes: Int, seed: UInt64) throws {
        self.classes = classes
        heads = c.decoderHeads
        depth = c.decoderDepth
        dim = c.outChannels
        let store = ParameterStore(tensors)
        var list: [(String, Variable)] = []
        for key in tensors.keys.sorted() where key.hasPrefix(Self.prefix) {
            let name = String(key.dropFirst(Self.prefix.count))
            // Not used by the prompt-free head: IoU head, SAM's own tokens.
            if name.hasPrefix("iou_prediction_head") || name == "iou_token.weight" || name == "mask_tokens.weight" { continue }
            // Only the first hypernetwork is used (one mask per class).
            if name.hasPrefix("output_hypernetworks_mlps."), !name.hasPrefix("output_hypernetworks_mlps.0.") { continue }
            list.append((name, Variable(try store.take(key, shape: tensors[key]!.shape.map { Optional($0) }), requiresGrad: true)))
        }
        var r = Initializer(state: seed &+ 0xA5A5)
        func tokens(_ n: Int) -> Variable {
            Variable(Tensor(shape: [n, c.outChannels], data: (0..<(n * c.outChannels)).map { _ in r.uniform() }), requiresGrad: true)
        }
        list.append(("class_iou_tokens", tokens(classes)))
        list.append(("class_mask_tokens", tokens(2 * classes)))
        parameters = list
        p = Dictionary(uniqueKeysWithValues: list)
        gaussian = try store.take("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", shape: [2, c.outChannels / 2])
        let g = c.gridSize
        keyPE = (g, PositionEmbeddingRandom(gaussian: gaussian).dense(height: g, width: g).reshaped([c.outChannels, g * g]).permuted([1, 0]))
        for needed in ["transformer.norm_final_attn.weight", "output_upscaling.0.weight", "output_hypernetworks_mlps.0.layers.0.weight"]
        where p[needed] == nil {
            throw CheckpointError.missingKey(Self.prefix + needed)
        }
    }

    // MARK: building blocks (Variable versions of the TwoWayTransformer pieces)

    func linear(_ x: Variable, _ name: String) -> Variable { Variable.linear(x, p[name + ".weight"]!, p[name + ".bias"]!) }

    func layerNorm(_ x: Variable, _ name: String) -> Variable { x.layerNorm(p[name + ".weight"]!, p[name + ".bias"]!, eps: 1e-5) }

    /// Multi-head attention (segment-anything transformer.py `Attention`).
    func attention(_ name: String, q: Variable, k: Variable, v: Variable) -> Variable {
        let qp = linear(q, name + ".q_proj"), kp = linear(k, name + ".k_proj"), vp = linear(v, name + ".v_proj")
        let inner = qp.shape[1], hd = inner / heads, nq = qp.shape[0], nk = kp.shape[0]
        // [N, heads*hd] -> [heads*N, hd], one head after another.
        func split(_ x: Variable, _ n: Int) -> Variable { x.reshaped([n, heads, hd]).permuted([1, 0, 2]).reshaped([heads * n, hd]) }
        let qs = split(qp, nq), ks = split(kp, nk), vs = split(vp, nk)
        var outs: [Variable] = []
        for h in 0..<heads {
            let s = Variable.matmul(qs.rows((h * nq)..<((h + 1) * nq)), ks.rows((h * nk)..<((h + 1) * nk)), transposeB: true)
                .scaled(by: 1 / Float(hd).squareRoot()).softmax()
            outs.append(Variable.matmul(s, vs.rows((h * nk)..<((h + 1) * nk))))
        }
        // [heads*Nq, hd] -> [Nq, heads*hd]
        let merged = Variable.concatRows(outs).reshaped([heads, nq, hd]).permuted([1, 0, 2]).reshaped([nq, inner])
        return linear(merged, name + ".out_proj")
    }

    func mlp(_ x: Variable, _ name: String) -> Variable { linear(linear(x, name + ".lin1").relu(), name + ".lin2") }

    func weights(_ name: String) -> AttentionWeights {
        func w(_ s: String) -> Variable { p[name + s]! }
        return AttentionWeights(wq: w(".q_proj.weight"), bq: w(".q_proj.bias"), wk: w(".k_proj.weight"), bk: w(".k_proj.bias"),
                                wv: w(".v_proj.weight"), bv: w(".v_proj.bias"), wo: w(".out_proj.weight"), bo: w(".out_proj.bias"))
    }

    /// Tokens attending to the image (few queries, many keys).
    func tokenToImage(_ name: String, q: Variable, k: Variable, v: Variable) -> Variable {
        Variable.attentionFewQueries(query: q, key: k, value: v, weights(name), heads: heads)
    }

    /// The image attending to the tokens (many queries, few keys).
    func imageToToken(_ name: String, q: Variable, k: Variable, v: Variable) -> Variable {
        Variable.attentionFewKeys(query: q, key: k, value: v, weights(name), heads: heads)
    }

    /// The two-way transformer: tokens [T, D] and image keys [HW, D] with their PE.
    /// `imagePlusPE` is image + keyPE (the first layer's keys, the same for every class).
    func transformer(tokens: Variable, keys image: Variable, keyPE: Variable, imagePlusPE: Variable) -> (Variable, Variable) {
        var queries = tokens, keys = image
        for i in 0..<depth {
            let b = "transformer.layers.\(i)"
            if i == 0 {
                queries = attention(b + ".self_attn", q: queries, k: queries, v: queries)
            } else {
                let q = queries + tokens
                queries = queries + attention(b + ".self_attn", q: q, k: q, v: queries)
            }
            queries = layerNorm(queries, b + ".norm1")
            let k = i == 0 ? imagePlusPE : keys + keyPE
            queries = layerNorm(queries + tokenToImage(b + ".cross_attn_token_to_image", q: queries + tokens, k: k, v: keys), b + ".norm2")
            queries = layerNorm(queries + mlp(queries, b + ".mlp"), b + ".norm3")
            keys = layerNorm(keys + imageToToken(b + ".cross_attn_image_to_token", q: k, k: queries + tokens, v: queries), b + ".norm4")
        }
        let final = tokenToImage("transformer.final_attn_token_to_image", q: queries + tokens, k: keys + keyPE, v: keys)
        return (layerNorm(queries + final, "transformer.norm_final_attn"), keys)
    }

    /// Logits [classes, 4g, 4g] for an image embedding [D, g, g].
    public func forward(_ embedding: Variable) -> Variable {
        let (d, h, w) = (embedding.shape[0], embedding.shape[1], embedding.shape[2])
        let keys = embedding.reshaped([d, h * w]).permuted([1, 0])  // [HW, D]
        let cached = self.keyPE
        let keyPE = Variable(h == cached.grid && w == cached.grid && cached.pe.shape == [h * w, d] ? cached.pe
            : PositionEmbeddingRandom(gaussian: gaussian).dense(height: h, width: w).reshaped([d, h * w]).permuted([1, 0]))
        let keysPlusPE = keys + keyPE
        let layers = (0..<8).filter { p["output_hypernetworks_mlps.0.layers.\($0).weight"] != nil }
        var maps: [Variable] = []
        for c in 0..<classes {
            let tokens = Variable.concatRows([p["class_iou_tokens"]!.rows(c..<(c + 1)), p["class_mask_tokens"]!.rows((2 * c)..<(2 * c + 2))])
            let (hs, src) = transformer(tokens: tokens, keys: keys, keyPE: keyPE, imagePlusPE: keysPlusPE)
            // Upscaling on channels-last pixels [HW, D]: ConvT -> LayerNorm2d (over channels,
            // i.e. each row) -> GELU -> ConvT -> GELU, in sub-pixel (blocked) pixel order.
            var up = Variable.convTransposeRows(src, p["output_upscaling.0.weight"]!, p["output_upscaling.0.bias"]!)
            up = up.layerNorm(p["output_upscaling.1.weight"]!, p["output_upscaling.1.bias"]!, eps: 1e-6).gelu()
            up = Variable.convTransposeRows(up, p["output_upscaling.3.weight"]!, p["output_upscaling.3.bias"]!).gelu()  // [16HW, D/8]
            // Hypernetwork on the class's first mask token.
            var t = hs.rows(1..<2)
            for (n, l) in layers.enumerated() {
                t = linear(t, "output_hypernetworks_mlps.0.layers.\(l)")
                if n < layers.count - 1 { t = t.relu() }
            }
            maps.append(Variable.matmul(up, t, transposeB: true).reshaped([1, 16 * h * w]))
        }
        return Variable.concatRows(maps).fromBlocked(height: h, width: w, k: 2, levels: 2)
    }
}
