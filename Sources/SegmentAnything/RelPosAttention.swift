import Tensor

// Port of `Attention`, `window_partition`, `get_rel_pos` and `add_decomposed_rel_pos` from
// segment-anything `modeling/image_encoder.py`. Windows are zero-padded after norm1 exactly
// as the reference pads them (padded tokens attend and are attended to with qkv = bias).

/// Multi-head self-attention with SAM's decomposed relative position bias.
struct RelPosAttention {
    let heads: Int
    let qkvW: Tensor, qkvB: Tensor
    let projW: Tensor, projB: Tensor
    let relPosH: Tensor?, relPosW: Tensor?

    /// Query rows processed at once per task in global attention (bounds the score buffer).
    static let rowBlock = 256

    /// get_rel_pos: relative embeddings [qSize, kSize, headDim] for equal query/key sizes.
    static func relativeTable(_ relPos: Tensor, size: Int) -> Tensor {
        let needed = 2 * size - 1
        let table = relPos.shape[0] == needed ? relPos : Resize.linearRows(relPos, length: needed)
        let d = relPos.shape[1]
        var out = [Float](repeating: 0, count: size * size * d)
        for q in 0..<size {
            for k in 0..<size {
                let src = (q - k + size - 1) * d
                for c in 0..<d { out[(q * size + k) * d + c] = table.data[src + c] }
            }
        }
        return Tensor(shape: [size, size, d], data: out)
    }

    /// Windowed attention over tokens x[h*w, C] with windows of `window` x `window`.
    func windowed(_ x: Tensor, height h: Int, width w: Int, window ws: Int) -> Tensor {
        let c = x.shape[1]
        let hp = (h + ws - 1) / ws * ws, wp = (w + ws - 1) / ws * ws
        // Zero-padded grid [hp*wp, C].
        var padded = Tensor(zeros: [hp * wp, c])
        Profiler.measure("pad/unpad") {
            for y in 0..<h {
                padded.data.replaceSubrange((y * wp * c)..<((y * wp + w) * c), with: x.data[(y * w * c)..<((y + 1) * w * c)])
            }
        }
        let qkv = Profiler.measure("qkv gemm") { GEMM.linear(padded, weight: qkvW, bias: qkvB) }  // [hp*wp, 3C]
        let nwy = hp / ws, nwx = wp / ws
        // Token indexes (into the padded grid) of each window, row-major inside the window.
        let windows: [[Int]] = (0..<(nwy * nwx)).map { wi in
            let (wy, wx) = (wi / nwx, wi % nwx)
            return (0..<(ws * ws)).map { t in (wy * ws + t / ws) * wp + wx * ws + t % ws }
        }
        var out = Tensor(zeros: [hp * wp, c])
        Profiler.measure("window attention") {
            attend(qkv: qkv, channels: c, groups: windows, gridH: ws, gridW: ws, into: &out)
        }
        // Drop the padding and project.
        var real = Tensor(zeros: [h * w, c])
        Profiler.measure("pad/unpad") {
            for y in 0..<h {
                real.data.replaceSubrange((y * w * c)..<((y + 1) * w * c), with: out.data[(y * wp * c)..<((y * wp + w) * c)])
            }
        }
        return Profiler.measure("proj gemm") { GEMM.linear(real, weight: projW, bias: projB) }
    }

    /// Global attention over all tokens x[h*w, C].
    func global(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        let c = x.shape[1]
        let qkv = Profiler.measure("qkv gemm") { GEMM.linear(x, weight: qkvW, bias: qkvB) }
        var out = Tensor(zeros: [h * w, c])
        Profiler.measure("global attention") {
            attend(qkv: qkv, channels: c, groups: [Array(0..<(h * w))], gridH: h, gridW: w, into: &out)
        }
        return Profiler.measure("proj gemm") { GEMM.linear(out, weight: projW, bias: projB) }
    }

    /// Attention inside each group of tokens (a window, or all tokens), all heads, writing the
    /// heads' outputs side by side into out[token, C]. Work is split over groups x heads x
    /// row blocks; each task owns disjoint output rows/columns.
    func attend(qkv: Tensor, channels c: Int, groups: [[Int]], gridH: Int, gridW: Int, into out: inout Tensor) {
        let hd = c / heads
        let scale = 1 / Float(hd).squareRoot()
        let t = gridH * gridW
        let relH = relPosH.map { Self.relativeTable($0, size: gridH) }
        let relW = relPosW.map { Self.relativeTable($0, size: gridW) }
        let blocks = (t + Self.rowBlock - 1) / Self.rowBlock
        let tasks = groups.count * heads * blocks
        qkv.data.withUnsafeBufferPointer { qkvp in
            out.data.withUnsafeMutableBufferPointer { outp in
                let qkvBase = qkvp.baseAddress!
                let outBase = outp.baseAddress!
                Parallel.forEach(tasks) { task in
                    let g = task / (heads * blocks), head = (task / blocks) % heads, blk = task % blocks
                    let tokens = groups[g]
                    let r0 = blk * Self.rowBlock, r1 = min(t, r0 + Self.rowBlock), rows = r1 - r0
                    // Gather this head's q (rows r0..<r1), k and v (all rows) contiguously.
                    let q = UnsafeMutablePointer<Float>.allocate(capacity: rows * hd)
                    let k = UnsafeMutablePointer<Float>.allocate(capacity: t * hd)
                    let v = UnsafeMutablePointer<Float>.allocate(capacity: t * hd)
                    let s = UnsafeMutablePointer<Float>.allocate(capacity: rows * t)
                    let o = UnsafeMutablePointer<Float>.allocate(capacity: rows * hd)
                    defer { q.deallocate(); k.deallocate(); v.deallocate(); s.deallocate(); o.deallocate() }
                    for (i, tok) in tokens.enumerated() {
                        let src = qkvBase + tok * 3 * c + head * hd
                        (k + i * hd).update(from: src + c, count: hd)
                        (v + i * hd).update(from: src + 2 * c, count: hd)
                        if i >= r0 && i < r1 { (q + (i - r0) * hd).update(from: src, count: hd) }
                    }
                    // Scores: scale * q @ k^T
                    GEMM.sgemm(false, true, m: rows, n: t, k: hd, alpha: scale, a: q, lda: hd, b: k, ldb: hd, c: s, ldc: t)
                    if let relH, let relW {
                        relH.data.withUnsafeBufferPointer { rh in
                            relW.data.withUnsafeBufferPointer { rw in
                                var bh = [Float](repeating: 0, count: gridH), bw = [Float](repeating: 0, count: gridW)
                                for r in 0..<rows {
                                    let qi = r0 + r, qy = qi / gridW, qx = qi % gridW
                                    let qrow = q + r * hd
                                    for ky in 0..<gridH {
                                        let e = rh.baseAddress! + (qy * gridH + ky) * hd
                                        var acc: Float = 0
                                        for d in 0..<hd { acc += qrow[d] * e[d] }
                                        bh[ky] = acc
                                    }
                                    for kx in 0..<gridW {
                                        let e = rw.baseAddress! + (qx * gridW + kx) * hd
                                        var acc: Float = 0
                                        for d in 0..<hd { acc += qrow[d] * e[d] }
                                        bw[kx] = acc
                                    }
                                    let srow = s + r * t
                                    for ky in 0..<gridH {
                                        let base = bh[ky]
                                        for kx in 0..<gridW { srow[ky * gridW + kx] += base + bw[kx] }
                                    }
                                }
                            }
                        }
                    }
                    Ops.softmaxRows(s, rows: rows, n: t)
                    GEMM.sgemm(false, false, m: rows, n: hd, k: t, a: s, lda: t, b: v, ldb: hd, c: o, ldc: hd)
                    for r in 0..<rows {
                        (outBase + tokens[r0 + r] * c + head * hd).update(from: o + r * hd, count: hd)
                    }
                }
            }
        }
    }
}
