import Tensor

extension Variable {
    /// Conv2d on x[Cin, H, W] with weight[Cout, Cin, k, k], stride, zero padding.
    public static func conv2d(_ x: Variable, _ w: Variable, _ b: Variable?, stride: Int = 1, padding: Int = 0) -> Variable {
        let xv = x.value, wv = w.value
        let y = Conv.conv2d(xv, weight: wv, bias: b?.value, stride: stride, padding: padding)
        let cin = xv.shape[0]
        let (cout, _, kh, kw) = (wv.shape[0], wv.shape[1], wv.shape[2], wv.shape[3])
        let (oh, ow) = (y.shape[1], y.shape[2])
        return Variable(y, parents: [x, w] + (b.map { [$0] } ?? [])) { g in
            // im2col once more: cols[Cin*kh*kw, OH*OW]; dW = g[Cout, OHW] @ cols^T;
            // dcols = W^T @ g, scattered back (col2im) into dx.
            let kdim = cin * kh * kw, npos = oh * ow
            let cols = Conv.im2col(xv, kh: kh, kw: kw, stride: stride, padding: padding)
            var dw = Tensor(zeros: wv.shape), dcols = [Float](repeating: 0, count: kdim * npos)
            g.data.withUnsafeBufferPointer { gp in
                cols.withUnsafeBufferPointer { cp in
                    dw.data.withUnsafeMutableBufferPointer { dp in
                        GEMM.sgemm(false, true, m: cout, n: kdim, k: npos, a: gp.baseAddress!, lda: npos, b: cp.baseAddress!,
                                   ldb: npos, c: dp.baseAddress!, ldc: kdim)
                    }
                }
                wv.data.withUnsafeBufferPointer { wp in
                    dcols.withUnsafeMutableBufferPointer { dp in
                        GEMM.sgemm(true, false, m: kdim, n: npos, k: cout, a: wp.baseAddress!, lda: kdim, b: gp.baseAddress!,
                                   ldb: npos, c: dp.baseAddress!, ldc: npos)
                    }
                }
            }
            let dx = Conv.col2im(dcols, shape: xv.shape, kh: kh, kw: kw, stride: stride, padding: padding)
            var grads: [Tensor?] = [dx, dw]
            if b != nil {
                var db = Tensor(zeros: [cout])
                for co in 0..<cout { for i in 0..<(oh * ow) { db.data[co] += g.data[co * oh * ow + i] } }
                grads.append(db)
            }
            return grads
        }
    }

    /// ConvTranspose2d with kernel == stride on x[Cin, H, W], weight[Cin, Cout, k, k].
    public static func convTranspose2d(_ x: Variable, _ w: Variable, _ b: Variable?) -> Variable {
        let xv = x.value, wv = w.value
        let y = Conv.convTranspose2dNonOverlapping(xv, weight: wv, bias: b?.value)
        let (cin, h, wd) = (xv.shape[0], xv.shape[1], xv.shape[2])
        let (cout, k) = (wv.shape[1], wv.shape[2])
        let hw = h * wd, ck = cout * k * k, ow = wd * k
        return Variable(y, parents: [x, w] + (b.map { [$0] } ?? [])) { g in
            // Gather g into gcols[Cout*k*k, HW] (the inverse of the forward's scatter).
            var gcols = [Float](repeating: 0, count: ck * hw)
            for c in 0..<cout {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let row = (c * k + ky) * k + kx
                        for yy in 0..<h {
                            for xx in 0..<wd { gcols[row * hw + yy * wd + xx] = g.data[(c * h * k + yy * k + ky) * ow + xx * k + kx] }
                        }
                    }
                }
            }
            var dx = Tensor(zeros: xv.shape), dw = Tensor(zeros: wv.shape)
            gcols.withUnsafeBufferPointer { gp in
                wv.data.withUnsafeBufferPointer { wp in
                    dx.data.withUnsafeMutableBufferPointer { dp in
                        // dx[Cin, HW] = W[Cin, Cout*k*k] @ gcols
                        GEMM.sgemm(false, false, m: cin, n: hw, k: ck, a: wp.baseAddress!, lda: ck, b: gp.baseAddress!,
                                   ldb: hw, c: dp.baseAddress!, ldc: hw)
                    }
                }
                xv.data.withUnsafeBufferPointer { xp in
                    dw.data.withUnsafeMutableBufferPointer { dp in
                        // dW[Cin, Cout*k*k] = x[Cin, HW] @ gcols^T
                        GEMM.sgemm(false, true, m: cin, n: ck, k: hw, a: xp.baseAddress!, lda: hw, b: gp.baseAddress!,
                                   ldb: hw, c: dp.baseAddress!, ldc: ck)
                    }
                }
            }
            var grads: [Tensor?] = [dx, dw]
            if b != nil {
                var db = Tensor(zeros: [cout])
                let plane = h * k * ow
                for c in 0..<cout { for i in 0..<plane { db.data[c] += g.data[c * plane + i] } }
                grads.append(db)
            }
            return grads
        }
    }

    /// SAM's LayerNorm2d on [C, H, W] (normalises over C), composed from primitives.
    public func layerNorm2d(_ w: Variable, _ b: Variable, eps: Float) -> Variable {
        let (c, h, wd) = (shape[0], shape[1], shape[2])
        return reshaped([c, h * wd]).permuted([1, 0]).layerNorm(w, b, eps: eps).permuted([1, 0]).reshaped([c, h, wd])
    }
}
