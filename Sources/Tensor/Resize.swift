/// Interpolation with PyTorch's F.interpolate semantics (align_corners = False).
public enum Resize {
    /// Source coordinate and weights for output index i, PyTorch's linear rule.
    @inline(__always)
    static func linearTaps(_ i: Int, inSize: Int, outSize: Int) -> (Int, Int, Float) {
        let scale = Float(inSize) / Float(outSize)
        var src = (Float(i) + 0.5) * scale - 0.5
        if src < 0 { src = 0 }
        let i0 = min(Int(src), inSize - 1)
        let i1 = min(i0 + 1, inSize - 1)
        return (i0, i1, src - Float(i0))
    }

    /// Bilinear resize of x[C, H, W] to [C, outH, outW] (mode="bilinear", align_corners=False,
    /// no antialias).
    public static func bilinear(_ x: Tensor, height outH: Int, width outW: Int) -> Tensor {
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        var out = [Float](repeating: 0, count: c * outH * outW)
        let ys = (0..<outH).map { linearTaps($0, inSize: h, outSize: outH) }
        let xs = (0..<outW).map { linearTaps($0, inSize: w, outSize: outW) }
        x.data.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { o in
                for ch in 0..<c {
                    let src = xp.baseAddress! + ch * h * w
                    for oy in 0..<outH {
                        let (y0, y1, fy) = ys[oy]
                        for ox in 0..<outW {
                            let (x0, x1, fx) = xs[ox]
                            let top = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx
                            let bot = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx
                            o[(ch * outH + oy) * outW + ox] = top * (1 - fy) + bot * fy
                        }
                    }
                }
            }
        }
        return Tensor(shape: [c, outH, outW], data: out)
    }

    /// Linear resize of rows: x[L, D] -> [outL, D] along L (F.interpolate mode="linear" on the
    /// transposed [1, D, L] tensor, as SAM's get_rel_pos does).
    public static func linearRows(_ x: Tensor, length outL: Int) -> Tensor {
        let (l, d) = (x.shape[0], x.shape[1])
        var out = [Float](repeating: 0, count: outL * d)
        for i in 0..<outL {
            let (a, b, f) = linearTaps(i, inSize: l, outSize: outL)
            for j in 0..<d { out[i * d + j] = x.data[a * d + j] * (1 - f) + x.data[b * d + j] * f }
        }
        return Tensor(shape: [outL, d], data: out)
    }
}

extension Resize {
    /// PyTorch's cubic convolution weights (A = -0.75).
    @inline(__always)
    static func cubicWeights(_ t: Float) -> (Float, Float, Float, Float) {
        let a: Float = -0.75
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return (far(t + 1), near(t), near(1 - t), far(2 - t))
    }

    /// Bicubic resize of x[C, H, W] (mode="bicubic", align_corners=False, no antialias), with
    /// PyTorch's border handling (taps clamped to the edge).
    public static func bicubic(_ x: Tensor, height outH: Int, width outW: Int) -> Tensor {
        let (c, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        func taps(_ i: Int, _ inSize: Int, _ outSize: Int) -> ([Int], [Float]) {
            let scale = Float(inSize) / Float(outSize)
            let src = (Float(i) + 0.5) * scale - 0.5
            let f = src.rounded(.down)
            let t = src - f
            let (w0, w1, w2, w3) = cubicWeights(t)
            let i0 = Int(f)
            return ((-1...2).map { min(max(i0 + $0, 0), inSize - 1) }, [w0, w1, w2, w3])
        }
        let ys = (0..<outH).map { taps($0, h, outH) }, xs = (0..<outW).map { taps($0, w, outW) }
        var out = [Float](repeating: 0, count: c * outH * outW)
        for ch in 0..<c {
            for oy in 0..<outH {
                let (yi, yw) = ys[oy]
                for ox in 0..<outW {
                    let (xi, xw) = xs[ox]
                    var acc: Float = 0
                    for a in 0..<4 {
                        var row: Float = 0
                        for b in 0..<4 { row += x.data[(ch * h + yi[a]) * w + xi[b]] * xw[b] }
                        acc += row * yw[a]
                    }
                    out[(ch * outH + oy) * outW + ox] = acc
                }
            }
        }
        return Tensor(shape: [c, outH, outW], data: out)
    }
}
