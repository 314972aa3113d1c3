import NN
import Tensor

// Port of segment-anything `modeling/mask_decoder.py` (MaskDecoder, MLP)
// (facebookresearch/segment-anything, commit dca509fe793f601edb92606367a655c15ac00fdf).
// One prompt set per image (the reference's batch size 1, where repeat_interleave is the
// identity): tokens are [N, C], images [C, h, w].

/// `MLP` of the mask decoder: Linear layers with ReLU between them (none after the last).
public struct MLP: Sendable {
    let weights: [Tensor], biases: [Tensor]

    /// Loads `<scope>.layers.<i>.{weight,bias}` for input -> hidden x (layers - 1) -> output.
    public init(inputDim: Int, hiddenDim: Int, outputDim: Int, layers: Int, weights s: ParameterStore.Scope) throws {
        let dims = [inputDim] + [Int](repeating: hiddenDim, count: layers - 1) + [outputDim]
        weights = try (0..<layers).map { try s.take("layers.\($0).weight", shape: [dims[$0 + 1], dims[$0]]) }
        biases = try (0..<layers).map { try s.take("layers.\($0).bias", shape: [dims[$0 + 1]]) }
    }

    /// x[N, input] -> [N, output].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var x = x
        for i in weights.indices {
            x = GEMM.linear(x, weight: weights[i], bias: biases[i])
            if i < weights.count - 1 { Ops.relu(&x) }
        }
        return x
    }
}

/// SAM's mask decoder: image embedding + prompt embeddings -> mask logits [K, 4h, 4w] and
/// predicted IoUs [K].
public struct MaskDecoder: Sendable {
    public let transformerDim: Int
    public let multimaskOutputs: Int
    public let transformer: TwoWayTransformer
    /// iou_token.weight [1, D] and mask_tokens.weight [multimaskOutputs + 1, D].
    public let iouToken: Tensor, maskTokens: Tensor
    let up0W: Tensor, up0B: Tensor, up1W: Tensor, up1B: Tensor, up3W: Tensor, up3B: Tensor
    /// One hypernetwork per mask token: D -> D -> D -> D/8.
    public let hypernetworks: [MLP]
    let iouHead: MLP

    static let layerNorm2dEps: Float = 1e-6

    public var numMaskTokens: Int { multimaskOutputs + 1 }

    /// Loads `mask_decoder.*` strictly.
    public init(config c: SAMConfig, weights store: ParameterStore, prefix: String = "mask_decoder") throws {
        let s = store.scoped(prefix)
        let d = c.outChannels, m = c.multimaskOutputs + 1
        transformerDim = d
        multimaskOutputs = c.multimaskOutputs
        transformer = try TwoWayTransformer(config: c, weights: store, prefix: prefix + ".transformer")
        iouToken = try s.take("iou_token.weight", shape: [1, d])
        maskTokens = try s.take("mask_tokens.weight", shape: [m, d])
        let u = s.scoped("output_upscaling")
        up0W = try u.take("0.weight", shape: [d, d / 4, 2, 2]); up0B = try u.take("0.bias", shape: [d / 4])
        up1W = try u.take("1.weight", shape: [d / 4]); up1B = try u.take("1.bias", shape: [d / 4])
        up3W = try u.take("3.weight", shape: [d / 4, d / 8, 2, 2]); up3B = try u.take("3.bias", shape: [d / 8])
        hypernetworks = try (0..<m).map {
            try MLP(inputDim: d, hiddenDim: d, outputDim: d / 8, layers: 3, weights: s.scoped("output_hypernetworks_mlps.\($0)"))
        }
        iouHead = try MLP(inputDim: d, hiddenDim: c.iouHeadHiddenDim, outputDim: m, layers: c.iouHeadDepth,
                          weights: s.scoped("iou_prediction_head"))
    }

    /// Intermediate results, for parity checks against the reference.
    public struct Trace {
        public var transformer = TwoWayTransformer.Trace()
        /// The transformer's outputs: tokens [N, D] and image [h*w, D].
        public var tokens: Tensor?, image: Tensor?
        /// output_upscaling's result [D/8, 4h, 4w].
        public var upscaled: Tensor?
        public init() {}
    }

    /// output_upscaling: src[D, h, w] -> ConvTranspose 2x2/2 -> LayerNorm2d -> GELU ->
    /// ConvTranspose 2x2/2 -> GELU -> [D/8, 4h, 4w].
    public func upscale(_ src: Tensor) -> Tensor {
        var x = Conv.convTranspose2dNonOverlapping(src, weight: up0W, bias: up0B)
        Ops.layerNorm2d(&x, weight: up1W, bias: up1B, eps: Self.layerNorm2dEps)
        Ops.gelu(&x)
        x = Conv.convTranspose2dNonOverlapping(x, weight: up3W, bias: up3B)
        Ops.gelu(&x)
        return x
    }

    /// The decoder's core, for any output tokens: runs the transformer on
    /// [outputTokens; promptTokens] against image + dense, upscales the image tokens, and turns
    /// the output tokens at `hypernetworkTokens` (indexes into the transformer's tokens, one per
    /// hypernetwork) into masks through `hypernetworks`.
    /// Returns the transformer's tokens [N, D] and mask logits [K, 4h, 4w].
    public func decode(outputTokens: Tensor, promptTokens: Tensor?, imageEmbedding: Tensor, imagePE: Tensor,
                       denseEmbedding: Tensor?, hypernetworks: [MLP], hypernetworkTokens: [Int],
                       trace: UnsafeMutablePointer<Trace>? = nil) -> (tokens: Tensor, masks: Tensor) {
        precondition(hypernetworks.count == hypernetworkTokens.count, "one token per hypernetwork")
        let d = transformerDim
        let (c, h, w) = (imageEmbedding.shape[0], imageEmbedding.shape[1], imageEmbedding.shape[2])
        precondition(c == d, "image embedding \(imageEmbedding.shape) for a \(d)-channel decoder")
        // tokens = cat(output tokens, sparse prompt embeddings) along the token axis
        var tokens = outputTokens.data
        if let promptTokens { tokens += promptTokens.data }
        let tokensT = Tensor(shape: [tokens.count / d, d], data: tokens)
        var src = imageEmbedding
        if let denseEmbedding {
            precondition(denseEmbedding.shape == imageEmbedding.shape, "dense \(denseEmbedding.shape) vs \(imageEmbedding.shape)")
            Ops.add(&src, denseEmbedding)
        }
        let (hs, keys) = trace == nil
            ? transformer(image: src, imagePE: imagePE, tokens: tokensT)
            : transformer(image: src, imagePE: imagePE, tokens: tokensT, trace: &trace!.pointee.transformer)
        trace?.pointee.tokens = hs
        trace?.pointee.image = keys
        // [h*w, D] -> [D, h*w] -> [D, h, w] (transpose(1, 2).view(b, c, h, w))
        let upscaled = upscale(keys.permuted([1, 0]).reshaped([d, h, w]))
        trace?.pointee.upscaled = upscaled
        // hyper_in[K, D/8]: each hypernetwork applied to its token.
        var hyper: [Float] = []
        for (mlp, t) in zip(hypernetworks, hypernetworkTokens) {
            hyper += mlp(Tensor(shape: [1, d], data: Array(hs.data[(t * d)..<((t + 1) * d)]))).data
        }
        let (uc, uh, uw) = (upscaled.shape[0], upscaled.shape[1], upscaled.shape[2])
        // [K, D/8] @ [D/8, 4h*4w] -> [K, 4h, 4w]
        let masks = GEMM.matmul(Tensor(shape: [hypernetworks.count, uc], data: hyper), upscaled.reshaped([uc, uh * uw]))
            .reshaped([hypernetworks.count, uh, uw])
        return (hs, masks)
    }

    /// predict_masks: all numMaskTokens masks [M, 4h, 4w] and IoU predictions [M].
    public func predictMasks(imageEmbedding: Tensor, imagePE: Tensor, sparse: Tensor, dense: Tensor,
                             trace: UnsafeMutablePointer<Trace>? = nil) -> (masks: Tensor, iou: Tensor) {
        let m = numMaskTokens
        // output tokens = cat(iou_token, mask_tokens): [1 + M, D]
        let output = Tensor(shape: [1 + m, transformerDim], data: iouToken.data + maskTokens.data)
        let (hs, masks) = decode(
            outputTokens: output, promptTokens: sparse, imageEmbedding: imageEmbedding, imagePE: imagePE,
            denseEmbedding: dense, hypernetworks: hypernetworks, hypernetworkTokens: Array(1...m), trace: trace)
        let iou = iouHead(Tensor(shape: [1, transformerDim], data: Array(hs.data[0..<transformerDim])))
        return (masks, iou.reshaped([m]))
    }

    /// forward: masks [K, 4h, 4w] and IoUs [K]; K = multimaskOutputs (masks 1...) with
    /// multimaskOutput, else 1 (mask 0).
    public func callAsFunction(imageEmbedding: Tensor, imagePE: Tensor, sparse: Tensor, dense: Tensor,
                               multimaskOutput: Bool, trace: UnsafeMutablePointer<Trace>? = nil) -> (masks: Tensor, iou: Tensor) {
        let (masks, iou) = predictMasks(imageEmbedding: imageEmbedding, imagePE: imagePE, sparse: sparse, dense: dense, trace: trace)
        let range = multimaskOutput ? 1..<numMaskTokens : 0..<1
        let plane = masks.shape[1] * masks.shape[2]
        return (Tensor(shape: [range.count, masks.shape[1], masks.shape[2]],
                       data: Array(masks.data[(range.lowerBound * plane)..<(range.upperBound * plane)])),
                Tensor(shape: [range.count], data: Array(iou.data[range])))
    }
}
