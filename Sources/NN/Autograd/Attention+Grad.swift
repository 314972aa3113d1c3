import CKernels
import Tensor

// Multi-head attention (segment-anything transformer.py `Attention`: q/k/v projections to an
// internal width, heads, softmax(q k^T / sqrt(head_dim)) v, output projection) as single
// primitives for the two-way transformer's cross attentions, where one side has only a few
// tokens. The projections of the many-token side are folded into the few-token side
// (q . (W_k x + b_k) = (W_k^T q) . x + const, and softmax rows sum to one), so the work on
// the large side is a handful of [N, heads*T] products instead of [N, D] x [D, D_internal]
// projections. Same function and gradients as the composition of linear, matmul and softmax.

/// The eight parameters of one attention module (nn.Linear weights [out, in] and biases).
public struct AttentionWeights {
    public let wq: Variable, bq: Variable, wk: Variable, bk: Variable
    public let wv: Variable, bv: Variable, wo: Variable, bo: Variable

    public init(wq: Variable, bq: Variable, wk: Variable, bk: Variable, wv: Variable, bv: Variable, wo: Variable, bo: Variable) {
        (self.wq, self.bq, self.wk, self.bk, self.wv, self.bv, self.wo, self.bo) = (wq, bq, wk, bk, wv, bv, wo, bo)
    }

    var all: [Variable] { [wq, bq, wk, bk, wv, bv, wo, bo] }
}

/// Float scratch owned by one primitive (forward intermediates kept for its backward).
final class Scratch: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { p.deallocate() }

    func tensor(_ shape: [Int]) -> Tensor { Tensor(shape: shape, data: Array(UnsafeBufferPointer(start: p, count: count))) }
}

/// An array of n floats filled by `body` through its base pointer: zeroed first, or, with
/// `zeroed: false`, left for `body` to write every element (a GEMM with beta 0, a full pass).
@inline(__always)
func filled(_ n: Int, zeroed: Bool = true, _ body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: n) { buf, count in
        if zeroed { buf.initialize(repeating: 0) }
        if n > 0 { body(buf.baseAddress!) }
        count = n
    }
}

/// Reads several tensors' storage at once.
@inline(__always)
func reading<R>(_ a: Tensor, _ body: (UnsafePointer<Float>) -> R) -> R {
    a.data.withUnsafeBufferPointer { body($0.baseAddress!) }
}

@inline(__always)
func reading<R>(_ a: Tensor, _ b: Tensor, _ body: (UnsafePointer<Float>, UnsafePointer<Float>) -> R) -> R {
    a.data.withUnsafeBufferPointer { pa in b.data.withUnsafeBufferPointer { pb in body(pa.baseAddress!, pb.baseAddress!) } }
}

@inline(__always)
func reading<R>(
    _ a: Tensor, _ b: Tensor, _ c: Tensor, _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>) -> R
) -> R {
    a.data.withUnsafeBufferPointer { pa in
        b.data.withUnsafeBufferPointer { pb in c.data.withUnsafeBufferPointer { pc in body(pa.baseAddress!, pb.baseAddress!, pc.baseAddress!) } }
    }
}

/// Row-major sgemm shorthand: C = alpha op(A) op(B) + beta C.
@inline(__always)
func gemm(
    _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, _ lda: Int,
    _ b: UnsafePointer<Float>, _ ldb: Int, beta: Float = 0, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
) {
    guard m > 0 && n > 0 else { return }
    if k == 0 {
        if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    GEMM.sgemm(ta, tb, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Column sums of a row-major [rows, n] matrix, added into out[n].
@inline(__always)
func addColumnSums(_ x: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>) {
    for r in 0..<rows {
        let row = x + r * n
        for i in 0..<n { out[i] += row[i] }
    }
}

/// Softmax backward over rows of length n, in place: d <- y * (d - sum(d * y)).
@inline(__always)
func softmaxBackwardRows(_ y: UnsafePointer<Float>, _ d: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
    for r in 0..<rows {
        let yr = y + r * n, dr = d + r * n
        var dot: Float = 0
        for i in 0..<n { dot += yr[i] * dr[i] }
        for i in 0..<n { dr[i] = yr[i] * (dr[i] - dot) }
    }
}

/// Softmax over rows of length n, in place. Short rows (n <= 8: a few-keys attention's heads,
/// the class axis of the loss) go to a C kernel unrolled per length, whose loop over rows
/// vectorises; longer rows to the row kernel.
func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
    if n <= 8 { asn_softmax_short_rows(x, rows, n) } else { Ops.softmaxRows(x, rows: rows, n: n) }
}

/// The gradients of a linear layer y = x W^T + b given dy: (dx if wanted, dW, db).
func linearBackward(x: Tensor, w: Tensor, dy: UnsafePointer<Float>, wantX: Bool) -> (Tensor?, Tensor, Tensor) {
    let outF = w.shape[0], inF = w.shape[1], rows = x.count / inF
    let dw = reading(x) { xp in filled(outF * inF, zeroed: false) { gemm(true, false, outF, inF, rows, dy, outF, xp, inF, $0, inF) } }
    let db = filled(outF) { addColumnSums(dy, rows: rows, n: outF, into: $0) }
    var dx: Tensor?
    if wantX {
        dx = Tensor(shape: x.shape, data: reading(w) { wp in filled(rows * inF, zeroed: false) { gemm(false, false, rows, inF, outF, dy, outF, wp, inF, $0, inF) } })
    }
    return (dx, Tensor(shape: w.shape, data: dw), Tensor(shape: [outF], data: db))
}

extension Variable {
    /// Attention for few queries over many keys: query [T, Dq], key [N, Dk], value [N, Dv]
    /// -> [T, Dout]. The key projection is applied to the queries instead of the N keys
    /// (its bias shifts each score row by a constant, which softmax ignores: its gradient
    /// is zero), the value projection after the weighted sum (softmax rows sum to one).
    public static func attentionFewQueries(query q: Variable, key k: Variable, value v: Variable, _ w: AttentionWeights, heads: Int) -> Variable {
        let qv = q.value, kv = k.value, vv = v.value
        let wq = w.wq.value, wk = w.wk.value, wv = w.wv.value, wo = w.wo.value
        let t = qv.shape[0], n = kv.shape[0], dk = kv.shape[1], dv = vv.shape[1], di = wq.shape[0], dout = wo.shape[0]
        precondition(vv.shape[0] == n && wk.shape == [di, dk] && wv.shape == [di, dv] && wo.shape[1] == di && di % heads == 0,
                     "attention: q \(qv.shape) k \(kv.shape) v \(vv.shape) weights \(wq.shape) \(wk.shape) \(wv.shape) \(wo.shape)")
        let hd = di / heads, ht = heads * t, scale = 1 / Float(hd).squareRoot()
        let qp = GEMM.linear(qv, weight: wq, bias: w.bq.value)  // [T, Di]
        let a = Scratch(ht * dk), p = Scratch(ht * n), r = Scratch(ht * dv)
        reading(qp, wk, kv) { qpp, wkp, kp in
            for h in 0..<heads {  // A_h = scale Q_h W_k,h  [T, Dk]
                gemm(false, false, t, dk, hd, alpha: scale, qpp + h * hd, di, wkp + h * hd * dk, dk, a.p + h * t * dk, dk)
            }
            gemm(false, true, ht, n, dk, a.p, dk, kp, dk, p.p, n)  // scores [HT, N]
        }
        Ops.softmaxRows(p.p, rows: ht, n: n)
        reading(vv) { vp in gemm(false, false, ht, dv, n, p.p, n, vp, dv, r.p, dv) }  // R = P V  [HT, Dv]
        let oT = Tensor(shape: [t, di], data: reading(wv, w.bv.value) { wvp, bvp in
            filled(t * di) { op in  // O_h = R_h W_v,h^T + b_v,h
                for h in 0..<heads { gemm(false, true, t, hd, dv, r.p + h * t * dv, dv, wvp + h * hd * dv, dv, op + h * hd, di) }
                for i in 0..<t { for j in 0..<di { op[i * di + j] += bvp[j] } }
            }
        })
        let y = GEMM.linear(oT, weight: wo, bias: w.bo.value)
        return Variable(y, parents: [q, k, v] + w.all) { g in
            reading(g, wo) { gp, wop in
                let dO = Scratch(t * di)
                gemm(false, false, t, di, dout, gp, dout, wop, di, dO.p, di)
                let (_, dWo, dbo) = linearBackward(x: oT, w: wo, dy: gp, wantX: false)
                let dbv = filled(di) { addColumnSums(dO.p, rows: t, n: di, into: $0) }
                let dR = Scratch(ht * dv)
                var dWv = [Float](), dWk = [Float]()
                var gq: Tensor?, gk: Tensor?, gv: Tensor?
                var dWq = Tensor(zeros: [0]), dbq = Tensor(zeros: [0])
                reading(wv, wk) { wvp, wkp in
                    for h in 0..<heads { gemm(false, false, t, dv, hd, dO.p + h * hd, di, wvp + h * hd * dv, dv, dR.p + h * t * dv, dv) }
                    dWv = filled(di * dv) { d in
                        for h in 0..<heads { gemm(true, false, hd, dv, t, dO.p + h * hd, di, r.p + h * t * dv, dv, d + h * hd * dv, dv) }
                    }
                    let dS = Scratch(ht * n)
                    reading(vv, kv) { vp, kp in
                        gemm(false, true, ht, n, dv, dR.p, dv, vp, dv, dS.p, n)  // dP
                        if v.requiresGrad { gv = Tensor(shape: vv.shape, data: filled(n * dv, zeroed: false) { gemm(true, false, n, dv, ht, p.p, n, dR.p, dv, $0, dv) }) }
                        softmaxBackwardRows(p.p, dS.p, rows: ht, n: n)
                        let dA = Scratch(ht * dk)
                        gemm(false, false, ht, dk, n, dS.p, n, kp, dk, dA.p, dk)
                        if k.requiresGrad { gk = Tensor(shape: kv.shape, data: filled(n * dk, zeroed: false) { gemm(true, false, n, dk, ht, dS.p, n, a.p, dk, $0, dk) }) }
                        let dQ = Scratch(t * di)
                        reading(qp) { qpp in
                            for h in 0..<heads {
                                gemm(false, true, t, hd, dk, alpha: scale, dA.p + h * t * dk, dk, wkp + h * hd * dk, dk, dQ.p + h * hd, di)
                            }
                            dWk = filled(di * dk) { d in
                                for h in 0..<heads { gemm(true, false, hd, dk, t, alpha: scale, qpp + h * hd, di, dA.p + h * t * dk, dk, d + h * hd * dk, dk) }
                            }
                        }
                        let lb = linearBackward(x: qv, w: wq, dy: dQ.p, wantX: q.requiresGrad)
                        (gq, dWq, dbq) = lb
                    }
                }
                return [gq, gk, gv, dWq, dbq, Tensor(shape: wk.shape, data: dWk), Tensor(zeros: [di]),
                        Tensor(shape: wv.shape, data: dWv), Tensor(shape: [di], data: dbv), dWo, dbo]
            }
        }
    }

    /// Attention for many queries over few keys: query [N, Dq], key [T, Dk], value [T, Dv]
    /// -> [N, Dout]. The query projection is folded into the keys (B_h = W_q,h^T K_h plus a
    /// per-key bias term), the output projection into the values (U_h = W_o,h V_h), so the
    /// N queries meet only [N, heads*T] products.
    public static func attentionFewKeys(query q: Variable, key k: Variable, value v: Variable, _ w: AttentionWeights, heads: Int) -> Variable {
        let qv = q.value, kv = k.value, vv = v.value
        let wq = w.wq.value, wk = w.wk.value, wv = w.wv.value, wo = w.wo.value, bq = w.bq.value
        let n = qv.shape[0], dq = qv.shape[1], t = kv.shape[0], di = wq.shape[0], dout = wo.shape[0]
        precondition(vv.shape[0] == t && wq.shape == [di, dq] && wk.shape[0] == di && wv.shape[0] == di && wo.shape[1] == di
                     && di % heads == 0, "attention: q \(qv.shape) k \(kv.shape) v \(vv.shape) weights \(wq.shape) \(wk.shape) \(wv.shape) \(wo.shape)")
        let hd = di / heads, ht = heads * t, scale = 1 / Float(hd).squareRoot()
        let kp = GEMM.linear(kv, weight: wk, bias: w.bk.value)  // [T, Di]
        let vp = GEMM.linear(vv, weight: wv, bias: w.bv.value)  // [T, Di]
        let b = Scratch(ht * dq), c = Scratch(ht), p = Scratch(n * ht), u = Scratch(ht * dout)
        reading(kp, wq, bq) { kpp, wqp, bqp in
            for h in 0..<heads {
                gemm(false, false, t, dq, hd, alpha: scale, kpp + h * hd, di, wqp + h * hd * dq, dq, b.p + h * t * dq, dq)
                for j in 0..<t {
                    var s: Float = 0
                    for e in 0..<hd { s += kpp[j * di + h * hd + e] * bqp[h * hd + e] }
                    c.p[h * t + j] = scale * s
                }
            }
        }
        reading(qv) { qp in gemm(false, true, n, ht, dq, qp, dq, b.p, dq, p.p, ht) }  // scores [N, HT]
        asn_bias_act_rows(p.p, n, ht, c.p, 0)
        softmaxRows(p.p, rows: n * heads, n: t)
        reading(vp, wo) { vpp, wop in
            for h in 0..<heads { gemm(false, true, t, dout, hd, vpp + h * hd, di, wop + h * hd, di, u.p + h * t * dout, dout) }
        }
        let y = reading(w.bo.value) { bop in
            filled(n * dout, zeroed: false) { yp in
                gemm(false, false, n, dout, ht, p.p, ht, u.p, dout, yp, dout)
                asn_bias_act_rows(yp, n, dout, bop, 0)
            }
        }
        return Variable(Tensor(shape: [n, dout], data: y), parents: [q, k, v] + w.all) { g in
            reading(g, wo, wq) { gp, wop, wqp in
                let dbo = filled(dout) { addColumnSums(gp, rows: n, n: dout, into: $0) }
                let dS = Scratch(n * ht), dU = Scratch(ht * dout)
                gemm(false, true, n, ht, dout, gp, dout, u.p, dout, dS.p, ht)  // dP
                gemm(true, false, ht, dout, n, p.p, ht, gp, dout, dU.p, dout)
                let dV = Scratch(t * di)
                let dWo = reading(vp) { vpp in
                    filled(dout * di) { d in
                        for h in 0..<heads {
                            gemm(false, false, t, hd, dout, dU.p + h * t * dout, dout, wop + h * hd, di, dV.p + h * hd, di)
                            gemm(true, false, dout, hd, t, dU.p + h * t * dout, dout, vpp + h * hd, di, d + h * hd, di)
                        }
                    }
                }
                softmaxBackwardRows(p.p, dS.p, rows: n * heads, n: t)
                var dqv: Tensor?
                let dB = Scratch(ht * dq)
                reading(qv) { qp in
                    if q.requiresGrad { dqv = Tensor(shape: qv.shape, data: filled(n * dq, zeroed: false) { gemm(false, false, n, dq, ht, dS.p, ht, b.p, dq, $0, dq) }) }
                    gemm(true, false, ht, dq, n, dS.p, ht, qp, dq, dB.p, dq)
                }
                let dc = filled(ht) { addColumnSums(dS.p, rows: n, n: ht, into: $0) }
                let dK = Scratch(t * di)
                var dWq = [Float](), dbq = [Float](repeating: 0, count: di)
                reading(kp, bq) { kpp, bqp in
                    dWq = filled(di * dq) { d in
                        for h in 0..<heads {
                            gemm(false, true, t, hd, dq, alpha: scale, dB.p + h * t * dq, dq, wqp + h * hd * dq, dq, dK.p + h * hd, di)
                            gemm(true, false, hd, dq, t, alpha: scale, kpp + h * hd, di, dB.p + h * t * dq, dq, d + h * hd * dq, dq)
                        }
                    }
                    for h in 0..<heads {
                        for j in 0..<t {
                            let s = scale * dc[h * t + j]
                            for e in 0..<hd {
                                dK.p[j * di + h * hd + e] += s * bqp[h * hd + e]
                                dbq[h * hd + e] += s * kpp[j * di + h * hd + e]
                            }
                        }
                    }
                }
                let (dk, dWk, dbk) = linearBackward(x: kv, w: wk, dy: dK.p, wantX: k.requiresGrad)
                let (dvv, dWv, dbv) = linearBackward(x: vv, w: wv, dy: dV.p, wantX: v.requiresGrad)
                return [dqv, dk, dvv, Tensor(shape: wq.shape, data: dWq), Tensor(shape: [di], data: dbq), dWk, dbk, dWv, dbv,
                        Tensor(shape: wo.shape, data: dWo), Tensor(shape: [dout], data: dbo)]
            }
        }
    }
}
