import CKernels

/// Convolutions on single images laid out [C, H, W], as GEMMs.
public enum Conv {
    /// nn.Conv2d on x[Cin, H, W] with weight[Cout, Cin, kh, kw], stride, zero padding.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
        let (cin, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let (cout, wcin, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(cin == wcin, "conv2d: input channels \(cin) vs weight \(weight.shape)")
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        let kdim = cin * kh * kw, npos = oh * ow
        // The bias (or zero) fills the output, and the GEMM adds to it.
        var out = [Float](unsafeUninitializedCapacity: cout * npos) { buf, n in
            for c in 0..<cout { (buf.baseAddress! + c * npos).initialize(repeating: bias?.data[c] ?? 0, count: npos) }
            n = cout * npos
        }
        if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
            // 1x1: out[Cout, HW] = W[Cout, Cin] @ x[Cin, HW]
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    out.withUnsafeMutableBufferPointer { o in
                        GEMM.sgemm(false, false, m: cout, n: npos, k: cin, a: wp.baseAddress!, lda: cin,
                                   b: xp.baseAddress!, ldb: npos, beta: 1, c: o.baseAddress!, ldc: npos)
                    }
                }
            }
        } else {
            // The unfolded input lives in a per-thread scratch buffer (no allocation per call).
            let cols = asn_scratch(kdim * npos, 0)!
            x.data.withUnsafeBufferPointer { xp in
                asn_im2col(xp.baseAddress!, cin, h, w, kh, kw, stride, padding, cols)
            }
            weight.data.withUnsafeBufferPointer { wp in
                out.withUnsafeMutableBufferPointer { o in
                    GEMM.sgemm(false, false, m: cout, n: npos, k: kdim, a: wp.baseAddress!, lda: kdim,
                               b: cols, ldb: npos, beta: 1, c: o.baseAddress!, ldc: npos)
                }
            }
        }
        return Tensor(shape: [cout, oh, ow], data: out)
    }

    /// Unfolds x[Cin, H, W] into cols[Cin*kh*kw, OH*OW] (zero padding): the GEMM operand of a
    /// convolution.
    public static func im2col(_ x: Tensor, kh: Int, kw: Int, stride: Int, padding: Int) -> [Float] {
        let (cin, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        let count = cin * kh * kw * oh * ow
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            x.data.withUnsafeBufferPointer { xp in
                asn_im2col(xp.baseAddress!, cin, h, w, kh, kw, stride, padding, buf.baseAddress!)
            }
            n = count
        }
    }

    /// The adjoint of `im2col`: sums cols[Cin*kh*kw, OH*OW] back into an image [Cin, H, W].
    public static func col2im(_ cols: [Float], shape: [Int], kh: Int, kw: Int, stride: Int, padding: Int) -> Tensor {
        cols.withUnsafeBufferPointer { col2im($0.baseAddress!, shape: shape, kh: kh, kw: kw, stride: stride, padding: padding) }
    }

    public static func col2im(_ cols: UnsafePointer<Float>, shape: [Int], kh: Int, kw: Int, stride: Int, padding: Int) -> Tensor {
        var out = Tensor(zeros: shape)
        out.data.withUnsafeMutableBufferPointer { op in
            asn_col2im(cols, shape[0], shape[1], shape[2], kh, kw, stride, padding, op.baseAddress!)
        }
        return out
    }

    /// nn.ConvTranspose2d with kernel == stride (no overlap, no padding) on x[Cin, H, W],
    /// weight[Cin, Cout, k, k].
    public static func convTranspose2dNonOverlapping(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let (cin, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let (wcin, cout, k, k2) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(cin == wcin && k == k2)
        let hw = h * w, ck = cout * k * k
        // cols[Cout*k*k, HW] = W^T[Cout*k*k, Cin] @ x[Cin, HW]
        var cols = [Float](repeating: 0, count: ck * hw)
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                cols.withUnsafeMutableBufferPointer { cp in
                    GEMM.sgemm(true, false, m: ck, n: hw, k: cin, a: wp.baseAddress!, lda: ck, b: xp.baseAddress!,
                               ldb: hw, c: cp.baseAddress!, ldc: hw)
                }
            }
        }
        let oh = h * k, ow = w * k
        var out = [Float](repeating: 0, count: cout * oh * ow)
        for c in 0..<cout {
            let b = bias?.data[c] ?? 0
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = (c * k + ky) * k + kx
                    for y in 0..<h {
                        for xx in 0..<w {
                            out[(c * oh + y * k + ky) * ow + xx * k + kx] = cols[row * hw + y * w + xx] + b
                        }
                    }
                }
            }
        }
        return Tensor(shape: [cout, oh, ow], data: out)
    }
}
