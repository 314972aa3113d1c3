import CKernels
import Foundation
import NN
import Tensor

/// Sizes of a TinyViT image encoder as MobileSAM and LiteMedSAM use it (`tiny_vit_sam.py`):
/// a convolutional first stage (MBConv blocks) and three stages of windowed-attention blocks,
/// joined by PatchMerging, then SAM's neck. The checkpoint carries no config; every size but the
/// input side is read from its tensors' shapes (`SAMCheckpoint.inferConfig`).
public struct TinyViTConfig: Codable, Equatable, Sendable {
    /// Channels of the four stages.
    public var embedDims: [Int]
    /// Blocks per stage.
    public var depths: [Int]
    /// Attention heads of stages 1-3 (stage 0 is convolutional: its entry is 0).
    public var numHeads: [Int]
    /// Attention windows of stages 1-3 (stage 0: 0).
    public var windowSizes: [Int]
    public var mlpRatio: Double
    /// MBConv's hidden channels = stage-0 channels x this.
    public var mbconvExpandRatio: Double

    /// LiteMedSAM's encoder (MedSAM's `build_lite_medsam`: TinyViT-5M at 256 pixels).
    public static let liteMedSAM = TinyViTConfig(
        embedDims: [64, 128, 160, 320], depths: [2, 2, 6, 2], numHeads: [0, 4, 5, 10], windowSizes: [0, 7, 14, 7],
        mlpRatio: 4, mbconvExpandRatio: 4)
}

/// Conv2d + BatchNorm2d (eval) folded into one convolution at load: w' = w * g / sqrt(var + eps),
/// b' = beta - mean * g / sqrt(var + eps), computed in double precision (eps 1e-5, PyTorch's
/// default; some of LiteMedSAM's running variances are below it).
struct FoldedConv {
    var weight: Tensor  // [out, in / groups, k, k]
    var bias: Tensor  // [out]
    /// Depthwise 3x3 only: the weights as [9, out].
    var tapMajor: [Float] = []

    static let batchNormEps = 1e-5

    init(_ s: ParameterStore.Scope, out: Int, inPerGroup: Int, kernel k: Int) throws {
        let w = try s.take("c.weight", shape: [out, inPerGroup, k, k])
        let g = try s.take("bn.weight", shape: [out]), beta = try s.take("bn.bias", shape: [out])
        let mean = try s.take("bn.running_mean", shape: [out]), variance = try s.take("bn.running_var", shape: [out])
        // The batch counter only matters in training: taken, and so accounted for, unused.
        _ = try s.take("bn.num_batches_tracked", shape: [])
        var wf = w.data, bf = [Float](repeating: 0, count: out)
        let per = inPerGroup * k * k
        for o in 0..<out {
            let scale = Double(g.data[o]) / (Double(variance.data[o]) + Self.batchNormEps).squareRoot()
            for i in 0..<per { wf[o * per + i] = Float(Double(w.data[o * per + i]) * scale) }
            bf[o] = Float(Double(beta.data[o]) - Double(mean.data[o]) * scale)
        }
        weight = Tensor(shape: w.shape, data: wf)
        bias = Tensor(shape: [out], data: bf)
        // A depthwise 3x3 filter also kept tap-major [9, C] for the channels-last kernel.
        if inPerGroup == 1 && k == 3 {
            tapMajor = (0..<(9 * out)).map { i in wf[(i % out) * 9 + i / out] }
        }
    }

    /// A depthwise 3x3 convolution (stride 1, padding 1) on tokens x[H*W, C], channels last.
    func depthwiseTokens(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        let c = x.shape[1]
        if tapMajor.isEmpty { preconditionFailure("depthwiseTokens on a convolution that is not depthwise 3x3") }
        let out = [Float](unsafeUninitializedCapacity: h * w * c) { buf, n in
            let yp = buf.baseAddress!
            x.data.withUnsafeBufferPointer { xp in
                tapMajor.withUnsafeBufferPointer { wp in
                    bias.data.withUnsafeBufferPointer { bp in
                        let (xb, wb, bb) = (xp.baseAddress!, wp.baseAddress!, bp.baseAddress!)
                        Parallel.chunks(h) { r in asn_dwconv3x3_tokens(xb, h, w, c, wb, bb, yp, r.lowerBound, r.upperBound) }
                    }
                }
            }
            n = h * w * c
        }
        return Tensor(shape: [h * w, c], data: out)
    }

    /// A 1x1 convolution on x[C, H, W].
    func pointwise(_ x: Tensor) -> Tensor { Conv.conv2d(x, weight: weight, bias: bias) }

    /// The depthwise 3x3 convolution (padding 1) on x[C, H, W], GELU after it when asked.
    func depthwise(_ x: Tensor, stride: Int, gelu: Bool) -> Tensor {
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1
        let out = [Float](unsafeUninitializedCapacity: c * oh * ow) { buf, n in
            let yp = buf.baseAddress!
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    bias.data.withUnsafeBufferPointer { bp in
                        let (xb, wb, bb) = (xp.baseAddress!, wp.baseAddress!, bp.baseAddress!)
                        Parallel.chunks(c) { r in
                            asn_dwconv3x3(xb, r.lowerBound, r.upperBound, h, w, stride, wb, bb, yp, gelu ? 1 : 0)
                        }
                    }
                }
            }
            n = c * oh * ow
        }
        return Tensor(shape: [c, oh, ow], data: out)
    }
}

/// TinyViT's windowed attention with a learned bias per head and relative offset (|dy|, |dx|).
struct TinyViTAttention {
    var normW: Tensor, normB: Tensor
    var qkv: Linear  // [3 C, C], outputs per head [q (d) | k (d) | v (d)]
    var proj: Linear
    /// A padded token's q/k/v: the qkv layer on the norm's bias (LayerNorm of zeros), [1, 3 C].
    var padRow: Tensor
    /// Per head, the bias of every (query, key) pair of a window: [heads, ws*ws, ws*ws].
    var bias: [Float]
    var heads: Int, window: Int
}

struct TinyViTBlock {
    var attn: TinyViTAttention
    var localConv: FoldedConv
    var mlpNormW: Tensor, mlpNormB: Tensor
    var fc1: Linear, fc2: Linear
}

/// MBConv: 1x1 expand, GELU, depthwise 3x3, GELU, 1x1 project, then the residual and GELU.
struct MBConv {
    var conv1: FoldedConv, conv2: FoldedConv, conv3: FoldedConv
}

/// PatchMerging: 1x1, GELU, depthwise 3x3 (stride 2, or 1 into the last stage), GELU, 1x1.
struct PatchMerging {
    var conv1: FoldedConv, conv2: FoldedConv, conv3: FoldedConv
    var stride: Int
}

/// The TinyViT image encoder of MobileSAM / LiteMedSAM: image [3, S, S] (preprocessed) ->
/// embeddings [outChannels, S/4, S/4]. Loaded from `image_encoder.*` of the checkpoint,
/// strictly, with every BatchNorm folded into its convolution.
public struct TinyViTEncoder: ImageEncoding {
    public let config: SAMConfig
    public let tiny: TinyViTConfig
    public let precisionChoice: PrecisionChoice
    let patch0: FoldedConv, patch1: FoldedConv
    let convBlocks: [MBConv]
    /// Stages 1-3's blocks.
    let stages: [[TinyViTBlock]]
    /// Merges after stages 0, 1, 2.
    let merges: [PatchMerging]
    let neck: Neck

    static let layerNormEps: Float = 1e-5

    public init(config c: SAMConfig, weights store: ParameterStore, prefix: String = "image_encoder", precision: Precision = .fp32) throws {
        guard let t = c.tinyViT else { throw CheckpointError.notACheckpoint(path: c.name, reason: "not a TinyViT configuration") }
        config = c
        tiny = t
        precisionChoice = Precision.resolve(precision)
        let precision = precisionChoice.effective
        let s = store.scoped(prefix)
        let d = t.embedDims
        patch0 = try FoldedConv(s.scoped("patch_embed.seq.0"), out: d[0] / 2, inPerGroup: 3, kernel: 1)
        patch1 = try FoldedConv(s.scoped("patch_embed.seq.2"), out: d[0], inPerGroup: d[0] / 2, kernel: 1)
        let hidden = Int(Double(d[0]) * t.mbconvExpandRatio)
        convBlocks = try (0..<t.depths[0]).map { i in
            let b = s.scoped("layers.0.blocks.\(i)")
            return MBConv(
                conv1: try FoldedConv(b.scoped("conv1"), out: hidden, inPerGroup: d[0], kernel: 1),
                conv2: try FoldedConv(b.scoped("conv2"), out: hidden, inPerGroup: 1, kernel: 3),
                conv3: try FoldedConv(b.scoped("conv3"), out: d[0], inPerGroup: hidden, kernel: 1))
        }
        merges = try (0..<3).map { l in
            let m = s.scoped("layers.\(l).downsample")
            let (i, o) = (d[l], d[l + 1])
            return PatchMerging(
                conv1: try FoldedConv(m.scoped("conv1"), out: o, inPerGroup: i, kernel: 1),
                conv2: try FoldedConv(m.scoped("conv2"), out: o, inPerGroup: 1, kernel: 3),
                conv3: try FoldedConv(m.scoped("conv3"), out: o, inPerGroup: o, kernel: 1),
                stride: l == 2 ? 1 : 2)
        }
        stages = try (1..<4).map { l in
            let dim = d[l], heads = t.numHeads[l], ws = t.windowSizes[l]
            let mlp = Int(Double(dim) * t.mlpRatio)
            return try (0..<t.depths[l]).map { i in
                let b = s.scoped("layers.\(l).blocks.\(i)")
                let table = try b.take("attn.attention_biases", shape: [heads, ws * ws])
                let normB = try b.take("attn.norm.bias", shape: [dim])
                let qkv = Linear(weight: try b.take("attn.qkv.weight", shape: [3 * dim, dim]), bias: try b.take("attn.qkv.bias", shape: [3 * dim]),
                                 precision: precision)
                return TinyViTBlock(
                    attn: TinyViTAttention(
                        normW: try b.take("attn.norm.weight", shape: [dim]), normB: normB, qkv: qkv,
                        proj: Linear(weight: try b.take("attn.proj.weight", shape: [dim, dim]), bias: try b.take("attn.proj.bias", shape: [dim]),
                                     precision: precision),
                        padRow: qkv(normB.reshaped([1, dim])),
                        bias: Self.pairBias(table, heads: heads, window: ws), heads: heads, window: ws),
                    localConv: try FoldedConv(b.scoped("local_conv"), out: dim, inPerGroup: 1, kernel: 3),
                    mlpNormW: try b.take("mlp.norm.weight", shape: [dim]), mlpNormB: try b.take("mlp.norm.bias", shape: [dim]),
                    fc1: Linear(weight: try b.take("mlp.fc1.weight", shape: [mlp, dim]), bias: try b.take("mlp.fc1.bias", shape: [mlp]),
                                precision: precision, activation: .gelu),
                    fc2: Linear(weight: try b.take("mlp.fc2.weight", shape: [dim, mlp]), bias: try b.take("mlp.fc2.bias", shape: [dim]),
                                precision: precision))
            }
        }
        neck = try Neck(s, in: d[3], out: c.outChannels)
    }

    /// The bias of query p and key q of a window, both row-major in it: the head's table at
    /// |y_p - y_q| * ws + |x_p - x_q| (TinyViT's attention_bias_idxs, which is not saved).
    static func pairBias(_ table: Tensor, heads: Int, window ws: Int) -> [Float] {
        let n = ws * ws
        var out = [Float](repeating: 0, count: heads * n * n)
        for h in 0..<heads {
            for p in 0..<n {
                for q in 0..<n {
                    out[(h * n + p) * n + q] = table.data[h * n + abs(p / ws - q / ws) * ws + abs(p % ws - q % ws)]
                }
            }
        }
        return out
    }

    /// Intermediate results, for parity checks: after the patch embedding ([C, S, S]), after each
    /// stage including its merge (tokens [L, C], stage 0 included), and each block's output.
    public struct Trace {
        public var patchEmbed: Tensor?
        public var stages: [Tensor] = []
        public var blocks: [Tensor] = []
    }

    public func encode(_ image: Tensor) -> Tensor { run(image, trace: nil) }

    public func run(_ image: Tensor, trace: UnsafeMutablePointer<Trace>?) -> Tensor {
        precondition(image.shape.count == 3 && image.shape[0] == 3, "encoder input must be [3, H, W]")
        var x = Profiler.measure("tinyvit patch embed") { () -> Tensor in
            var x = patch0.pointwise(image)
            Ops.gelu(&x)
            return patch1.pointwise(x)
        }
        trace?.pointee.patchEmbed = x
        for b in convBlocks {
            x = Profiler.measure("tinyvit mbconv") { mbconv(b, x) }
            trace?.pointee.blocks.append(x)
        }
        // x is [C, H, W] here; the attention stages work on tokens [H*W, C].
        var chw = Profiler.measure("tinyvit merge") { merge(merges[0], x) }
        trace?.pointee.stages.append(tokens(chw))
        var tok = Tensor(zeros: [0])
        for l in 0..<3 {
            let (h, w) = (chw.shape[1], chw.shape[2])
            tok = Profiler.measure("tinyvit layout") { tokens(chw) }
            for b in stages[l] {
                forward(b, &tok, height: h, width: w)
                trace?.pointee.blocks.append(tok)
            }
            chw = Profiler.measure("tinyvit layout") { channelsFirst(tok, height: h, width: w) }
            if l < 2 {
                chw = Profiler.measure("tinyvit merge") { merge(merges[l + 1], chw) }
                trace?.pointee.stages.append(tokens(chw))
            } else {
                trace?.pointee.stages.append(tok)
            }
        }
        return Profiler.measure("tinyvit neck") { neck(chw) }
    }

    func mbconv(_ b: MBConv, _ x: Tensor) -> Tensor {
        banded(b.conv1, b.conv2, b.conv3, x, stride: 1, residual: true)
    }

    func merge(_ m: PatchMerging, _ x: Tensor) -> Tensor {
        banded(m.conv1, m.conv2, m.conv3, x, stride: m.stride, residual: false)
    }

    /// Output rows per band of the first stage's convolution blocks.
    var bandRows = 32

    /// 1x1, GELU, depthwise 3x3 (stride 1 or 2), GELU, 1x1 on x[C, H, W], then (MBConv) the
    /// residual and GELU, computed in bands of output rows, each with the input rows its
    /// depthwise filter reaches: the full-resolution hidden activation (LiteMedSAM: 256
    /// channels x 256 x 256, 64 MiB) is never whole. A tensor that size is a fresh mapping from
    /// the kernel at every allocation (above glibc's 32 MiB mmap threshold), and page faults
    /// and zeroing took most of a per-core encoder run; bands stay in reused heap memory, and
    /// run on all cores when the encoder does.
    func banded(_ c1: FoldedConv, _ c2: FoldedConv, _ c3: FoldedConv, _ x: Tensor, stride: Int, residual: Bool) -> Tensor {
        let (cin, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1, cout = c3.weight.shape[0]
        let bands = (oh + bandRows - 1) / bandRows
        var out = [Float](repeating: 0, count: cout * oh * ow)
        out.withUnsafeMutableBufferPointer { op in
            let o = op.baseAddress!
            x.data.withUnsafeBufferPointer { xp in
                let xb = xp.baseAddress!
                Parallel.forEach(bands) { band in
                    let o0 = band * bandRows, o1 = min(oh, o0 + bandRows)
                    // Input rows lo..<hi: those the outputs' 3x3 windows reach. With stride 2, lo
                    // is even so that band-local output j reads band rows 2j-1...2j+1.
                    let lo = stride == 1 ? max(0, o0 - 1) : max(0, 2 * o0 - 2)
                    let hi = min(h, stride == 1 ? o1 + 1 : 2 * o1)
                    let skip = stride == 1 ? o0 - lo : (o0 > 0 ? 1 : 0)
                    let rows = hi - lo
                    var input = [Float](unsafeUninitializedCapacity: cin * rows * w) { buf, n in
                        for c in 0..<cin { (buf.baseAddress! + c * rows * w).update(from: xb + (c * h + lo) * w, count: rows * w) }
                        n = cin * rows * w
                    }
                    var t = c1.pointwise(Tensor(shape: [cin, rows, w], data: input))
                    input = []
                    Ops.gelu(&t)
                    t = c2.depthwise(t, stride: stride, gelu: true)
                    let brows = t.shape[1], keep = o1 - o0, hidden = t.shape[0]
                    // The band's own output rows skip..<skip+keep, then the last 1x1.
                    if skip != 0 || keep != brows {
                        t = Tensor(shape: [hidden, keep, ow], data: [Float](unsafeUninitializedCapacity: hidden * keep * ow) { buf, n in
                            t.data.withUnsafeBufferPointer { tp in
                                for c in 0..<hidden {
                                    (buf.baseAddress! + c * keep * ow).update(from: tp.baseAddress! + (c * brows + skip) * ow, count: keep * ow)
                                }
                            }
                            n = hidden * keep * ow
                        })
                    }
                    var y = c3.pointwise(t)
                    y.data.withUnsafeMutableBufferPointer { yp in
                        let yb = yp.baseAddress!
                        for c in 0..<cout {
                            let dst = o + (c * oh + o0) * ow, src = yb + c * keep * ow
                            if residual {
                                let r = xb + (c * h + o0) * w
                                for i in 0..<(keep * ow) { dst[i] = src[i] + r[i] }
                            } else {
                                dst.update(from: src, count: keep * ow)
                            }
                        }
                        if residual {
                            for c in 0..<cout { asn_gelu_to(o + (c * oh + o0) * ow, o + (c * oh + o0) * ow, keep * ow) }
                        }
                    }
                }
            }
        }
        return Tensor(shape: [cout, oh, ow], data: out)
    }

    /// [C, H, W] -> [H*W, C].
    func tokens(_ x: Tensor) -> Tensor { x.reshaped([x.shape[0], x.shape[1] * x.shape[2]]).permuted([1, 0]) }

    /// [H*W, C] -> [C, H, W].
    func channelsFirst(_ t: Tensor, height h: Int, width w: Int) -> Tensor { t.permuted([1, 0]).reshaped([t.shape[1], h, w]) }

    func forward(_ b: TinyViTBlock, _ x: inout Tensor, height h: Int, width w: Int) {
        let attended = Profiler.measure("tinyvit attention") { attention(b.attn, x, height: h, width: w) }
        Ops.add(&x, attended)
        x = Profiler.measure("tinyvit local conv") { b.localConv.depthwiseTokens(x, height: h, width: w) }
        Profiler.measure("tinyvit mlp") {
            var m = x
            Ops.layerNorm(&m, weight: b.mlpNormW, bias: b.mlpNormB, eps: Self.layerNormEps)
            m = b.fc2(b.fc1(m))
            Ops.add(&x, m)
        }
    }

    /// The attention branch on tokens x[H*W, C]: the grid is zero-padded to whole windows
    /// BEFORE the LayerNorm (which sits inside TinyViT's attention), so a padded token is the
    /// norm's bias, and it takes part as a key and value, unmasked. Padded queries are dropped.
    func attention(_ a: TinyViTAttention, _ x: Tensor, height h: Int, width w: Int) -> Tensor {
        let c = x.shape[1], ws = a.window, heads = a.heads, d = c / heads, n = ws * ws
        let qkv = Profiler.measure("tinyvit qkv") { () -> Tensor in
            var xn = x
            Ops.layerNorm(&xn, weight: a.normW, bias: a.normB, eps: Self.layerNormEps)
            return a.qkv(xn)  // [H*W, 3C]
        }
        // The padded token's q/k/v: the qkv layer on the norm's bias.
        let padRow = a.padRow
        let nwy = (h + ws - 1) / ws, nwx = (w + ws - 1) / ws
        let scale = 1 / Float(d).squareRoot()
        var out = Tensor(zeros: [h * w, c])
        Profiler.measure("tinyvit windows") {
        out.data.withUnsafeMutableBufferPointer { op in
            qkv.data.withUnsafeBufferPointer { qp in
                padRow.data.withUnsafeBufferPointer { pp in
                    a.bias.withUnsafeBufferPointer { bp in
                        let o = op.baseAddress!, q3 = qp.baseAddress!, pad = pp.baseAddress!, bias = bp.baseAddress!
                        Parallel.forEach(nwy * nwx) { win in
                            let wy = win / nwx, wx = win % nwx
                            // The window's tokens, row-major; -1 for padding. Queries: the real ones.
                            var rows = [Int](repeating: -1, count: n), real: [Int] = []
                            for p in 0..<n {
                                let (y, xx) = (wy * ws + p / ws, wx * ws + p % ws)
                                if y < h && xx < w { rows[p] = y * w + xx; real.append(p) }
                            }
                            let nq = real.count
                            let buf = asn_scratch(nq * d + 2 * n * d + nq * n + nq * d, 1)!
                            let qb = buf, kb = qb + nq * d, vb = kb + n * d, sb = vb + n * d, ob = sb + nq * n
                            for hh in 0..<heads {
                                let base = hh * 3 * d
                                for p in 0..<n {
                                    let src = rows[p] < 0 ? pad : q3 + rows[p] * 3 * c
                                    (kb + p * d).update(from: src + base + d, count: d)
                                    (vb + p * d).update(from: src + base + 2 * d, count: d)
                                }
                                for (i, p) in real.enumerated() { (qb + i * d).update(from: q3 + rows[p] * 3 * c + base, count: d) }
                                // Scores = scale q k^T + the pair bias, softmax over keys.
                                for (i, p) in real.enumerated() { (sb + i * n).update(from: bias + (hh * n + p) * n, count: n) }
                                GEMM.sgemm(false, true, m: nq, n: n, k: d, alpha: scale, a: qb, lda: d, b: kb, ldb: d, beta: 1, c: sb, ldc: n)
                                asn_softmax_rows(sb, nq, n)
                                GEMM.sgemm(false, false, m: nq, n: d, k: n, a: sb, lda: n, b: vb, ldb: d, c: ob, ldc: d)
                                for (i, p) in real.enumerated() { (o + rows[p] * c + hh * d).update(from: ob + i * d, count: d) }
                            }
                        }
                    }
                }
            }
        }
        }
        return Profiler.measure("tinyvit proj") { a.proj(out) }
    }
}
