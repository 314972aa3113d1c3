import Tensor

extension Variable {
    /// Conv2d on x[Cin, H, W] with weight[Cout, Cin, k, k], stride, zero padding.
    public static func conv2d(_ x: Variable, _ w: Variable, _ b: Variable?, stride: Int = 1, padding: Int = 0) -> Variable {
        let xv = x.value, wv = w.value
        let y = Conv.conv2d(xv, weight: wv, bias: b?.value, stride: stride, padding: padding)
        let (cin, h, wd) = (xv.shape[0], xv.shape[1], xv.shape[2])
        let (cout, _, kh, kw) = (wv.shape[0], wv.shape[1], wv.shape[2], wv.shape[3])
        let (oh, ow) = (y.shape[1], y.shape[2])
        return Variable(y, parents: [x, w] + (b.map { [$0] } ?? [])) { g in
            var dx = Tensor(zeros: xv.shape), dw = Tensor(zeros: wv.shape)
            // Direct loops: the heads' convolutions are small.
            for co in 0..<cout {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let gv = g.data[(co * oh + oy) * ow + ox]
                        if gv == 0 { continue }
                        for ci in 0..<cin {
                            for ky in 0..<kh {
                                let iy = oy * stride - padding + ky
                                guard iy >= 0 && iy < h else { continue }
                                for kx in 0..<kw {
                                    let ix = ox * stride - padding + kx
                                    guard ix >= 0 && ix < wd else { continue }
                                    let wi = ((co * cin + ci) * kh + ky) * kw + kx, xi = (ci * h + iy) * wd + ix
                                    dw.data[wi] += gv * xv.data[xi]
                                    dx.data[xi] += gv * wv.data[wi]
                                }
                            }
                        }
                    }
                }
            }
            var grads: [Tensor?] = [dx, dw]
            if b != nil {
                var db = Tensor(zeros: [cout])
                for co in 0..<cout { for i in 0..<(oh * ow) { db.data[co] += g.data[co * oh * ow + i] } }
                grads.append(db)
            }
            return grads
        }
    }
}
