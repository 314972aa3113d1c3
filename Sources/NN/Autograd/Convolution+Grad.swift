import CKernels
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
            // dcols = W^T @ g, scattered back (col2im) into dx. Both column matrices live in
            // per-thread scratch buffers: at 256 x 256 they are tens of MB, and fresh ones
            // cost a page fault per 4 KiB and a zero fill on every step.
            let kdim = cin * kh * kw, npos = oh * ow
            let cols = asn_scratch(kdim * npos, 0)!, dcols = asn_scratch(kdim * npos, 1)!
            xv.data.withUnsafeBufferPointer { xp in
                asn_im2col(xp.baseAddress!, cin, xv.shape[1], xv.shape[2], kh, kw, stride, padding, cols)
            }
            var dw = Tensor(zeros: wv.shape)
            g.data.withUnsafeBufferPointer { gp in
                dw.data.withUnsafeMutableBufferPointer { dp in
                    GEMM.sgemm(false, true, m: cout, n: kdim, k: npos, a: gp.baseAddress!, lda: npos, b: cols,
                               ldb: npos, c: dp.baseAddress!, ldc: kdim)
                }
                wv.data.withUnsafeBufferPointer { wp in
                    GEMM.sgemm(true, false, m: kdim, n: npos, k: cout, a: wp.baseAddress!, lda: kdim, b: gp.baseAddress!,
                               ldb: npos, c: dcols, ldc: npos)
                }
            }
            let dx = Conv.col2im(UnsafePointer(dcols), shape: xv.shape, kh: kh, kw: kw, stride: stride, padding: padding)
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

extension Variable {
    /// ConvTranspose2d with kernel == stride == k on a channels-last image: x[N, Cin] (N input
    /// pixels, one per row, in any order), weight[Cin, Cout, k, k] -> [N*k*k, Cout], where row
    /// n*k*k + ky*k + kx is output pixel (k*y + ky, k*x + kx) of input pixel n = (y, x).
    /// One GEMM each way; chained, these give the sub-pixel (blocked) order that
    /// `fromBlocked` turns back into raster order.
    public static func convTransposeRows(_ x: Variable, _ w: Variable, _ b: Variable?) -> Variable {
        let xv = x.value, wv = w.value
        let (cin, cout, k) = (wv.shape[0], wv.shape[1], wv.shape[2])
        precondition(wv.rank == 4 && wv.shape[3] == k && xv.shape.last == cin, "convTransposeRows: x \(xv.shape), weight \(wv.shape)")
        let n = xv.count / cin, kk = k * k, m = kk * cout
        // wr[ci, s*Cout + c] = w[ci, c, s]
        let wr = reading(wv) { wp in
            filled(cin * m) { d in
                for ci in 0..<cin { for c in 0..<cout { for s in 0..<kk { d[ci * m + s * cout + c] = wp[(ci * cout + c) * kk + s] } } }
            }
        }
        let wrT = Tensor(shape: [cin, m], data: wr)
        let bias = b?.value
        let y = reading(xv, wrT) { xp, wrp in
            filled(n * m, zeroed: false) { yp in
                gemm(false, false, n, m, cin, xp, cin, wrp, m, yp, m)
                // The bias in one vectorised pass over the output (rows of Cout).
                if let bias { bias.data.withUnsafeBufferPointer { asn_bias_act_rows(yp, n * kk, cout, $0.baseAddress!, 0) } }
            }
        }
        return Variable(Tensor(shape: [n * kk, cout], data: y), parents: [x, w] + (b.map { [$0] } ?? [])) { g in
            reading(g, xv, wrT) { gp, xp, wrp in
                var grads: [Tensor?] = []
                grads.append(x.requiresGrad ? Tensor(shape: xv.shape, data: filled(n * cin, zeroed: false) { gemm(false, true, n, cin, m, gp, m, wrp, m, $0, cin) }) : nil)
                let dwr = Scratch(cin * m)
                gemm(true, false, cin, m, n, xp, cin, gp, m, dwr.p, m)
                grads.append(Tensor(shape: wv.shape, data: filled(cin * m, zeroed: false) { d in
                    for ci in 0..<cin { for c in 0..<cout { for s in 0..<kk { d[(ci * cout + c) * kk + s] = dwr.p[ci * m + s * cout + c] } } }
                }))
                if b != nil { grads.append(Tensor(shape: [cout], data: filled(cout) { addColumnSums(gp, rows: n * kk, n: cout, into: $0) })) }
                return grads
            }
        }
    }

    /// Channel maps in the blocked order of chained `convTransposeRows` back to raster order:
    /// x[C, h*w*k^(2L)] with index ((y*w + x)*k*k + s1)*k*k + s2 ... (L levels, each s = ky*k + kx)
    /// -> [C, h*k^L, w*k^L]. A pure permutation (its backward is the inverse permutation).
    public func fromBlocked(height h: Int, width w: Int, k: Int, levels: Int) -> Variable {
        var side = 1
        for _ in 0..<levels { side *= k }
        let c = shape[0], plane = h * w * side * side, oh = h * side, ow = w * side
        precondition(value.count == c * plane, "fromBlocked: \(shape) is not [C, \(plane)]")
        // src[raster index] = blocked index
        var src = [Int32](repeating: 0, count: plane)
        for y in 0..<oh {
            for x in 0..<ow {
                var idx = (y / side) * w + x / side, sy = side, sx = side
                for _ in 0..<levels {
                    sy /= k
                    sx /= k
                    idx = idx * k * k + ((y / sy) % k) * k + (x / sx) % k
                }
                src[y * ow + x] = Int32(idx)
            }
        }
        let xv = value
        let y = reading(xv) { xp in
            src.withUnsafeBufferPointer { sp in
                filled(c * plane, zeroed: false) { yp in
                    for ch in 0..<c { for i in 0..<plane { yp[ch * plane + i] = xp[ch * plane + Int(sp[i])] } }
                }
            }
        }
        return Variable(Tensor(shape: [c, oh, ow], data: y), parents: [self]) { g in
            [Tensor(shape: xv.shape, data: reading(g) { gp in
                src.withUnsafeBufferPointer { sp in
                    filled(c * plane, zeroed: false) { d in
                        for ch in 0..<c { for i in 0..<plane { d[ch * plane + Int(sp[i])] = gp[ch * plane + i] } }
                    }
                }
            })]
        }
    }

}
