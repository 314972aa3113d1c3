import NN
import Tensor

// Port of segment-anything's `modeling/image_encoder.py` (facebookresearch/segment-anything,
// main branch): ViT with windowed and global attention, decomposed relative position bias,
// and the 256-channel neck. Tokens are kept as [H * W, C] row-major (the PyTorch [B, H, W, C]
// layout with B = 1).

/// One transformer block's weights.
struct EncoderBlock {
    var norm1W: Tensor, norm1B: Tensor
    var qkv: Linear
    var proj: Linear
    var relPosH: Tensor?, relPosW: Tensor?
    var norm2W: Tensor, norm2B: Tensor
    var lin1: Linear
    var lin2: Linear
    /// 0 for global attention.
    var windowSize: Int
}

/// SAM's image encoder: image [3, S, S] (already normalised and padded) -> embeddings
/// [outChannels, S/16, S/16].
public struct ImageEncoderViT: Sendable {
    public let config: SAMConfig
    let patchW: Tensor, patchB: Tensor
    let posEmbed: Tensor  // [grid, grid, C]
    let blocks: [EncoderBlock]
    let neck: Neck

    static let layerNormEps: Float = 1e-6

    /// The precision asked for and the one the products run in (bf16 only where the CPU has it).
    public let precisionChoice: PrecisionChoice

    /// Loads `image_encoder.*` from a state dict, strictly. `precision` applies to the blocks'
    /// linear layers (see `Precision`).
    public init(
        config c: SAMConfig, weights store: ParameterStore, prefix: String = "image_encoder",
        precision: Precision = .fp32
    ) throws {
        config = c
        var choice = Precision.resolve(precision)
        let precision = choice.effective
        let s = store.scoped(prefix)
        let e = c.embedDim, g = c.gridSize
        patchW = try s.take("patch_embed.proj.weight", shape: [e, 3, c.patchSize, c.patchSize])
        patchB = try s.take("patch_embed.proj.bias", shape: [e])
        posEmbed = try s.take("pos_embed", shape: [1, g, g, e]).reshaped([g, g, e])
        var blocks: [EncoderBlock] = []
        for i in 0..<c.depth {
            let b = s.scoped("blocks.\(i)")
            let ws = c.globalAttentionIndexes.contains(i) ? 0 : c.windowSize
            let relSize = ws == 0 ? g : ws
            blocks.append(EncoderBlock(
                norm1W: try b.take("norm1.weight", shape: [e]), norm1B: try b.take("norm1.bias", shape: [e]),
                qkv: Linear(
                    weight: try b.take("attn.qkv.weight", shape: [3 * e, e]), bias: try b.take("attn.qkv.bias", shape: [3 * e]),
                    precision: precision),
                proj: Linear(
                    weight: try b.take("attn.proj.weight", shape: [e, e]), bias: try b.take("attn.proj.bias", shape: [e]),
                    precision: precision),
                relPosH: c.useRelPos ? try b.take("attn.rel_pos_h", shape: [2 * relSize - 1, c.headDim]) : nil,
                relPosW: c.useRelPos ? try b.take("attn.rel_pos_w", shape: [2 * relSize - 1, c.headDim]) : nil,
                norm2W: try b.take("norm2.weight", shape: [e]), norm2B: try b.take("norm2.bias", shape: [e]),
                lin1: Linear(
                    weight: try b.take("mlp.lin1.weight", shape: [c.mlpDim, e]), bias: try b.take("mlp.lin1.bias", shape: [c.mlpDim]),
                    precision: precision, activation: .gelu),
                lin2: Linear(
                    weight: try b.take("mlp.lin2.weight", shape: [e, c.mlpDim]), bias: try b.take("mlp.lin2.bias", shape: [e]),
                    precision: precision),
                windowSize: ws))
        }
        self.blocks = blocks
        // Every layer must run as reported: a layer oneDNN refused is named, not hidden.
        let layers = blocks.flatMap { [$0.qkv, $0.proj, $0.lin1, $0.lin2] }
        if choice.effective == .bf16, layers.contains(where: { $0.precision != .bf16 }) {
            choice.effective = .fp32
            choice.note = "bf16 was asked for, but oneDNN refused a bfloat16 product for some of the encoder's layers: those run in fp32"
        }
        precisionChoice = choice
        let o = c.outChannels
        neck = try Neck(s, in: e, out: o)
    }

    /// Intermediate results, for parity checks against the reference.
    public struct Trace {
        public var patchEmbed: Tensor?
        public var posAdded: Tensor?
        public var blocks: [Tensor] = []
    }

    /// Runs the encoder on image[3, S, S]; returns [outChannels, S/16, S/16].
    public func callAsFunction(_ image: Tensor, trace: UnsafeMutablePointer<Trace>? = nil) -> Tensor {
        let c = config
        precondition(image.shape.count == 3 && image.shape[0] == 3, "encoder input must be [3, H, W]")
        let (h, w) = (image.shape[1] / c.patchSize, image.shape[2] / c.patchSize)
        // Patch embedding: conv 16x16 stride 16 -> [C, h, w], then tokens [h*w, C].
        var x = Conv.conv2d(image, weight: patchW, bias: patchB, stride: c.patchSize).reshaped([c.embedDim, h * w])
            .permuted([1, 0])
        trace?.pointee.patchEmbed = x
        // Absolute position embedding (interpolated when the grid differs from the checkpoint's).
        Ops.add(&x, positionEmbedding(height: h, width: w))
        trace?.pointee.posAdded = x
        for block in blocks {
            forward(block, &x, height: h, width: w)
            trace?.pointee.blocks.append(x)
        }
        // Neck on [C, h, w].
        return neck(x.permuted([1, 0]).reshaped([c.embedDim, h, w]))
    }

    /// pos_embed as tokens [h*w, C]; resized bicubically when the grid is not the checkpoint's.
    func positionEmbedding(height h: Int, width w: Int) -> Tensor {
        let g = config.gridSize
        if h == g && w == g { return posEmbed.reshaped([g * g, config.embedDim]) }
        let chw = posEmbed.permuted([2, 0, 1])
        return Resize.bicubic(chw, height: h, width: w).reshaped([config.embedDim, h * w]).permuted([1, 0])
    }

    func forward(_ b: EncoderBlock, _ x: inout Tensor, height h: Int, width w: Int) {
        let c = config.embedDim
        var xn = x
        Profiler.measure("layernorm") { Ops.layerNorm(&xn, weight: b.norm1W, bias: b.norm1B, eps: Self.layerNormEps) }
        let attn = RelPosAttention(heads: config.numHeads, qkv: b.qkv, proj: b.proj, relPosH: b.relPosH, relPosW: b.relPosW)
        let out: Tensor
        if b.windowSize > 0 {
            out = attn.windowed(xn, height: h, width: w, window: b.windowSize)
        } else {
            out = attn.global(xn, height: h, width: w)
        }
        Profiler.measure("residual") { Ops.add(&x, out) }
        var m = x
        Profiler.measure("layernorm") { Ops.layerNorm(&m, weight: b.norm2W, bias: b.norm2B, eps: Self.layerNormEps) }
        // The MLP in row chunks: vit_b's hidden activation for all 4096 tokens is 50 MB, above
        // glibc's largest mmap threshold, so every block mapped and zero-filled it afresh
        // (page faults were ~10% of a service profile); a chunk's 12 MB is reused from the heap.
        let rows = m.shape[0], chunk = mlpRowChunk
        if rows <= chunk {
            m = Profiler.measure("mlp gemm") { mlp(b, m) }
            Profiler.measure("residual") { Ops.add(&x, m) }
            return
        }
        for r0 in stride(from: 0, to: rows, by: chunk) {
            let n = min(chunk, rows - r0)
            let part = Tensor(shape: [n, c], data: Array(m.data[(r0 * c)..<((r0 + n) * c)]))
            let out = Profiler.measure("mlp gemm") { mlp(b, part) }
            Profiler.measure("residual") {
                x.data.withUnsafeMutableBufferPointer { xp in
                    out.data.withUnsafeBufferPointer { op in
                        let dst = xp.baseAddress! + r0 * c
                        for i in 0..<(n * c) { dst[i] += op[i] }
                    }
                }
            }
        }
    }

    /// lin2(lin1(x)), lin1 with its bias and GELU fused; in bf16 the hidden activation stays
    /// in bfloat16 between the two products (it was rounded to bfloat16 before lin2 anyway).
    func mlp(_ b: EncoderBlock, _ x: Tensor) -> Tensor {
        if b.lin2.precision == .bf16, let hidden = b.lin1.bf16Output(x) { return b.lin2(hidden) }
        return b.lin2(b.lin1(x))
    }

    /// Token rows per MLP chunk (see `forward`); tests compare against one chunk.
    var mlpRowChunk = 1024
}
