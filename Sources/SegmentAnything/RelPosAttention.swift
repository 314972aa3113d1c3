import CBF16
import CKernels
import Tensor

// Port of `Attention`, `window_partition`, `get_rel_pos` and `add_decomposed_rel_pos` from
// segment-anything `modeling/image_encoder.py`. Windows are zero-padded after norm1 exactly
// as the reference pads them (padded tokens attend and are attended to with qkv = bias).

/// Multi-head self-attention with SAM's decomposed relative position bias.
struct RelPosAttention {
    let heads: Int
    let qkv: Linear
    let proj: Linear
    let relPosH: Tensor?, relPosW: Tensor?

    /// Query rows processed at once per task (bounds the score buffer: 64 x 4096 floats = 1 MiB,
    /// which stays in the L2 cache between the two products and the softmax).
    static let rowBlock = 64

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
        let qkv = Profiler.measure("qkv gemm") { self.qkv(padded) }  // [hp*wp, 3C]
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
        return Profiler.measure("proj gemm") { proj(real) }
    }

    /// Global attention over all tokens x[h*w, C].
    func global(_ x: Tensor, height h: Int, width w: Int) -> Tensor {
        let c = x.shape[1]
        let qkv = Profiler.measure("qkv gemm") { self.qkv(x) }
        var out = Tensor(zeros: [h * w, c])
        Profiler.measure("global attention") {
            attend(qkv: qkv, channels: c, groups: [Array(0..<(h * w))], gridH: h, gridW: w, into: &out)
        }
        return Profiler.measure("proj gemm") { proj(out) }
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
        let identity = groups.count == 1 && groups[0].count == t && groups[0].enumerated().allSatisfy { $0.offset == $0.element }
        // A window (up to 256 tokens) is one task per head: its keys and values are gathered
        // once, not once per 64-row block (vit_b's 14 x 14 windows would take 4 blocks).
        let rowBlock = !identity && t <= 256 ? t : Self.rowBlock
        let blocks = (t + rowBlock - 1) / rowBlock
        let tasks = groups.count * heads * blocks
        if self.qkv.precision == .bf16, identity {
            attendGlobalBF16(qkv: qkv, channels: c, gridH: gridH, gridW: gridW, relH: relH, relW: relW, into: &out)
            return
        }
        qkv.data.withUnsafeBufferPointer { qkvp in
            out.data.withUnsafeMutableBufferPointer { outp in
                let qkvBase = qkvp.baseAddress!
                let outBase = outp.baseAddress!
                // Contiguous task ranges per thread, each with scratch buffers allocated once
                // (fresh megabyte buffers per task cost page faults).
                let maxRows = min(t, rowBlock)
                Parallel.chunks(tasks) { taskRange in
                  let s = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * t)
                  let scratch = UnsafeMutablePointer<Float>.allocate(capacity: identity ? 1 : (maxRows + 2 * t) * hd)
                  let o = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * hd)
                  defer { s.deallocate(); scratch.deallocate(); o.deallocate() }
                  for task in taskRange {
                    let g = task / (heads * blocks), head = (task / blocks) % heads, blk = task % blocks
                    let tokens = groups[g]
                    let r0 = blk * rowBlock, r1 = min(t, r0 + rowBlock), rows = r1 - r0
                    // This head's q (rows r0..<r1), k and v (all rows), with their row strides.
                    // A group that is every token in order (global attention) is read in place
                    // from qkv (row stride 3C); a window is gathered contiguously first.
                    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
                    let ld: Int
                    if identity {
                        q = qkvBase + r0 * 3 * c + head * hd
                        k = qkvBase + c + head * hd
                        v = qkvBase + 2 * c + head * hd
                        ld = 3 * c
                    } else {
                        let buf = scratch
                        let qb = buf, kb = buf + rows * hd, vb = buf + (rows + t) * hd
                        for (i, tok) in tokens.enumerated() {
                            let src = qkvBase + tok * 3 * c + head * hd
                            (kb + i * hd).update(from: src + c, count: hd)
                            (vb + i * hd).update(from: src + 2 * c, count: hd)
                            if i >= r0 && i < r1 { (qb + (i - r0) * hd).update(from: src, count: hd) }
                        }
                        q = UnsafePointer(qb)
                        k = UnsafePointer(kb)
                        v = UnsafePointer(vb)
                        ld = hd
                    }
                    // Scores: scale * q @ k^T
                    GEMM.sgemm(false, true, m: rows, n: t, k: hd, alpha: scale, a: q, lda: ld, b: k, ldb: ld, c: s, ldc: t)
                    if let relH, let relW {
                        relH.data.withUnsafeBufferPointer { rh in
                            relW.data.withUnsafeBufferPointer { rw in
                                asn_add_rel_pos(s, rows, r0, q, ld, hd, rh.baseAddress!, rw.baseAddress!, gridH, gridW)
                            }
                        }
                    }
                    Ops.softmaxRows(s, rows: rows, n: t)
                    if identity {
                        // Straight into the output rows (row stride C).
                        GEMM.sgemm(false, false, m: rows, n: hd, k: t, a: s, lda: t, b: v, ldb: ld,
                                   c: outBase + r0 * c + head * hd, ldc: c)
                    } else {
                        GEMM.sgemm(false, false, m: rows, n: hd, k: t, a: s, lda: t, b: v, ldb: ld, c: o, ldc: hd)
                        for r in 0..<rows {
                            (outBase + tokens[r0 + r] * c + head * hd).update(from: o + r * hd, count: hd)
                        }
                    }
                  }
                }
            }
        }
    }

    /// Global attention with both products in bfloat16 (AMX), softmax and the relative
    /// position bias in float32: the bf16 precision mode.
    func attendGlobalBF16(qkv: Tensor, channels c: Int, gridH: Int, gridW: Int, relH: Tensor?, relW: Tensor?, into out: inout Tensor) {
        let hd = c / heads, t = gridH * gridW
        let scale = 1 / Float(hd).squareRoot()
        let blocks = (t + Self.rowBlock - 1) / Self.rowBlock
        // Per head, contiguous bf16 K^T [hd, t] and V [t, hd]: plain layouts let oneDNN use its
        // AMX kernels (strided views fall back to slower generic ones).
        var kT = [UInt16](repeating: 0, count: heads * hd * t), vB = [UInt16](repeating: 0, count: heads * t * hd)
        qkv.data.withUnsafeBufferPointer { src in
            kT.withUnsafeMutableBufferPointer { kp in
                vB.withUnsafeMutableBufferPointer { vp in
                    let sp = src.baseAddress!, kb = kp.baseAddress!, vb = vp.baseAddress!
                    Parallel.forEach(heads) { h in
                        var row = [Float](repeating: 0, count: t)
                        for d in 0..<hd {
                            for i in 0..<t { row[i] = sp[i * 3 * c + c + h * hd + d] }
                            asn_to_bf16(row, kb + (h * hd + d) * t, Int64(t), 1)
                        }
                        for i in 0..<t { asn_to_bf16(sp + i * 3 * c + 2 * c + h * hd, vb + (h * t + i) * hd, Int64(hd), 1) }
                    }
                }
            }
        }
        qkv.data.withUnsafeBufferPointer { qkvp in
            kT.withUnsafeBufferPointer { kp in
              vB.withUnsafeBufferPointer { vp in
                out.data.withUnsafeMutableBufferPointer { outp in
                    let qkvBase = qkvp.baseAddress!, kBase = kp.baseAddress!, vBase = vp.baseAddress!, outBase = outp.baseAddress!
                    let maxRows = min(t, Self.rowBlock)
                    Parallel.chunks(heads * blocks) { taskRange in
                        let s = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * t)
                        let sB = UnsafeMutablePointer<UInt16>.allocate(capacity: maxRows * t)
                        let qB = UnsafeMutablePointer<UInt16>.allocate(capacity: maxRows * hd)
                        let o = UnsafeMutablePointer<Float>.allocate(capacity: maxRows * hd)
                        let inv = UnsafeMutablePointer<Float>.allocate(capacity: maxRows)
                        defer { s.deallocate(); sB.deallocate(); qB.deallocate(); o.deallocate(); inv.deallocate() }
                        for task in taskRange {
                            let head = task / blocks, blk = task % blocks
                            let r0 = blk * Self.rowBlock, rows = min(t, r0 + Self.rowBlock) - r0
                            let q = qkvBase + r0 * 3 * c + head * hd
                            for r in 0..<rows { asn_to_bf16(q + r * 3 * c, qB + r * hd, Int64(hd), scale) }
                            Parallel.pinGEMMThreads()
                            var rc = asn_bf16_gemm(Int64(rows), Int64(t), Int64(hd), qB, Int64(hd),
                                                   kBase + head * hd * t, Int64(t), 0, s, Int64(t))
                            precondition(rc == 0, "bf16 attention scores failed (\(rc))")
                            // Bias, softmax numerators in bf16 and 1 / row sums in one kernel;
                            // the rows are normalised after the product (softmax(s) V = (e V) / sum e).
                            rc = withRelTables(relH, relW) { rh, rw in
                                asn_rel_pos_softmax_bf16(s, rows, r0, q, 3 * c, hd, rh, rw, gridH, gridW, sB, inv)
                            }
                            precondition(rc == 0, "bf16 attention: grid \(gridH) x \(gridW) above 512 a side")
                            Parallel.pinGEMMThreads()
                            rc = asn_bf16_gemm(Int64(rows), Int64(hd), Int64(t), sB, Int64(t),
                                               vBase + head * t * hd, Int64(hd), 0, o, Int64(hd))
                            precondition(rc == 0, "bf16 attention output failed (\(rc))")
                            for r in 0..<rows {
                                let dst = outBase + (r0 + r) * c + head * hd, src = o + r * hd, k = inv[r]
                                for j in 0..<hd { dst[j] = src[j] * k }
                            }
                        }
                    }
                }
              }
            }
        }
    }

    /// Runs body with the relative tables' storage, or nil pointers when the layer has none.
    private func withRelTables<R>(_ relH: Tensor?, _ relW: Tensor?,
                                  _ body: (UnsafePointer<Float>?, UnsafePointer<Float>?) -> R) -> R {
        guard let relH, let relW else { return body(nil, nil) }
        return relH.data.withUnsafeBufferPointer { rh in
            relW.data.withUnsafeBufferPointer { rw in body(rh.baseAddress, rw.baseAddress) }
        }
    }
}
