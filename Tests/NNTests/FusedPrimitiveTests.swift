import CKernels
import Foundation
import Testing

@testable import NN
@testable import Tensor

/// The fused primitives of the AutoSAM head: finite-difference gradient checks, and equality
/// (forward and every gradient) with the same function composed from the basic primitives.
@Suite struct FusedPrimitiveTests {
    /// segment-anything's `Attention` composed from linear, per-head matmul and softmax.
    static func composedAttention(_ q: Variable, _ k: Variable, _ v: Variable, _ w: AttentionWeights, heads: Int) -> Variable {
        let qp = Variable.linear(q, w.wq, w.bq), kp = Variable.linear(k, w.wk, w.bk), vp = Variable.linear(v, w.wv, w.bv)
        let inner = qp.shape[1], hd = inner / heads, nq = qp.shape[0], nk = kp.shape[0]
        func split(_ x: Variable, _ n: Int) -> Variable { x.reshaped([n, heads, hd]).permuted([1, 0, 2]).reshaped([heads * n, hd]) }
        let qs = split(qp, nq), ks = split(kp, nk), vs = split(vp, nk)
        var outs: [Variable] = []
        for h in 0..<heads {
            let s = Variable.matmul(qs.rows((h * nq)..<((h + 1) * nq)), ks.rows((h * nk)..<((h + 1) * nk)), transposeB: true)
                .scaled(by: 1 / Float(hd).squareRoot()).softmax()
            outs.append(Variable.matmul(s, vs.rows((h * nk)..<((h + 1) * nk))))
        }
        let merged = Variable.concatRows(outs).reshaped([heads, nq, hd]).permuted([1, 0, 2]).reshaped([nq, inner])
        return Variable.linear(merged, w.wo, w.bo)
    }

    static func weightTensors(d: Int, inner: Int, _ r: inout GradCheck.RNG) -> [Tensor] {
        [GradCheck.random([inner, d], &r), GradCheck.random([inner], &r), GradCheck.random([inner, d], &r), GradCheck.random([inner], &r),
         GradCheck.random([inner, d], &r), GradCheck.random([inner], &r), GradCheck.random([d, inner], &r), GradCheck.random([d], &r)]
    }

    static func weights(_ v: ArraySlice<Variable>) -> AttentionWeights {
        let a = Array(v)
        return AttentionWeights(wq: a[0], bq: a[1], wk: a[2], bk: a[3], wv: a[4], bv: a[5], wo: a[6], bo: a[7])
    }

    enum Form: CaseIterable { case fewQueries, fewKeys }

    static func fused(_ form: Form, _ x: [Variable], heads: Int) -> Variable {
        switch form {
        case .fewQueries: return Variable.attentionFewQueries(query: x[0], key: x[1], value: x[2], weights(x[3...]), heads: heads)
        case .fewKeys: return Variable.attentionFewKeys(query: x[0], key: x[1], value: x[2], weights(x[3...]), heads: heads)
        }
    }

    @Test(arguments: Form.allCases)
    func attentionGradientsMatchFiniteDifferences(form: Form) {
        var r = GradCheck.RNG(s: 21)
        let (d, inner, heads) = (8, 4, 2)
        let (nq, nk) = form == .fewQueries ? (3, 7) : (7, 3)
        let inputs = [GradCheck.random([nq, d], &r), GradCheck.random([nk, d], &r), GradCheck.random([nk, d], &r)]
            + Self.weightTensors(d: d, inner: inner, &r)
        let e = GradCheck.check(inputs, samples: 8) { Self.fused(form, $0, heads: heads) }
        #expect(e < 2e-2, "\(form) \(e)")
    }

    /// Forward and all eleven gradients equal the composed attention's at SAM-like proportions
    /// (8 heads, downsampled internal width), with and without gradients for the inputs.
    @Test(arguments: Form.allCases, [true, false])
    func attentionEqualsComposition(form: Form, inputsNeedGrad: Bool) throws {
        var r = GradCheck.RNG(s: 22)
        let (d, inner, heads) = (32, 16, 8)
        let (nq, nk) = form == .fewQueries ? (3, 50) : (50, 3)
        let inputs = [GradCheck.random([nq, d], &r), GradCheck.random([nk, d], &r), GradCheck.random([nk, d], &r)]
        let ws = Self.weightTensors(d: d, inner: inner, &r)
        let seed = GradCheck.random([nq, d], &r)
        func run(_ f: ([Variable]) -> Variable) -> (Tensor, [Tensor?]) {
            let vars = inputs.map { Variable($0, requiresGrad: inputsNeedGrad) } + ws.map { Variable($0, requiresGrad: true) }
            let y = f(vars)
            y.backward(seed: seed)
            return (y.value, vars.map(\.grad))
        }
        let (yf, gf) = run { Self.fused(form, $0, heads: heads) }
        let (yc, gc) = run { Self.composedAttention($0[0], $0[1], $0[2], Self.weights($0[3...]), heads: heads) }
        #expect(yf.maxAbsDifference(yc) <= 1e-5 * yc.maxAbs, "\(form) forward")
        for i in 0..<gf.count {
            if i < 3 && !inputsNeedGrad {
                #expect(gf[i] == nil, "input \(i) needs no gradient")
                continue
            }
            let a = try #require(gf[i], "\(form) gradient \(i)"), b = try #require(gc[i])
            // The key bias (i = 6) has a zero gradient in exact arithmetic: compared with the
            // largest gradient instead of its own (rounding-noise) magnitude.
            let largest = gc.compactMap { $0?.maxAbs }.max() ?? 1
            let scale = i == 6 ? largest : b.maxAbs
            #expect(a.maxAbsDifference(b) <= 1e-4 * scale, "\(form) gradient \(i): \(a.maxAbsDifference(b)) vs \(b.maxAbs)")
        }
    }

    @Test func convTransposeRowsGradients() {
        var r = GradCheck.RNG(s: 23)
        let x = GradCheck.random([6, 3], &r), w = GradCheck.random([3, 2, 2, 2], &r), b = GradCheck.random([2], &r)
        #expect(GradCheck.check([x, w, b]) { Variable.convTransposeRows($0[0], $0[1], $0[2]) } < 2e-2)
        #expect(GradCheck.check([GradCheck.random([2, 96], &r)]) { $0[0].fromBlocked(height: 2, width: 3, k: 2, levels: 2) } < 2e-2)
        #expect(GradCheck.check([GradCheck.random([2, 54], &r)]) { $0[0].fromBlocked(height: 2, width: 3, k: 3, levels: 1) } < 2e-2)
    }

    /// Two chained channels-last transposed convolutions, brought back to raster order, equal
    /// the [C, H, W] transposed convolutions (values and gradients).
    @Test func convTransposeRowsEqualsImageLayout() {
        var r = GradCheck.RNG(s: 24)
        let (c, h, w) = (5, 3, 4)
        let x = GradCheck.random([c, h, w], &r)
        let w1 = GradCheck.random([c, 4, 2, 2], &r), b1 = GradCheck.random([4], &r)
        let w2 = GradCheck.random([4, 3, 2, 2], &r), b2 = GradCheck.random([3], &r)
        let seed = GradCheck.random([3, 4 * h, 4 * w], &r)
        func run(_ rows: Bool) -> (Tensor, [Tensor?]) {
            let v = [x, w1, b1, w2, b2].map { Variable($0, requiresGrad: true) }
            let y: Variable
            if rows {
                let xr = v[0].reshaped([c, h * w]).permuted([1, 0])
                let u = Variable.convTransposeRows(Variable.convTransposeRows(xr, v[1], v[2]).gelu(), v[3], v[4])  // [16hw, 3]
                y = u.permuted([1, 0]).fromBlocked(height: h, width: w, k: 2, levels: 2)
            } else {
                y = Variable.convTranspose2d(Variable.convTranspose2d(v[0], v[1], v[2]).gelu(), v[3], v[4])
            }
            y.backward(seed: seed)
            return (y.value, v.map(\.grad))
        }
        let (ya, ga) = run(true), (yb, gb) = run(false)
        #expect(ya.shape == yb.shape && ya.maxAbsDifference(yb) <= 1e-5 * yb.maxAbs)
        for (a, b) in zip(ga, gb) {
            guard let a, let b else {
                Issue.record("missing gradient")
                continue
            }
            #expect(a.maxAbsDifference(b) <= 1e-5 * b.maxAbs)
        }
    }

    /// GELU's backward (`asn_gelu_backward`: the derivative from the forward output and a
    /// polynomial exp) against the libm formula Phi(x) + x phi(x) over [-12, 12] and at large |x|.
    @Test func geluDerivativeMatchesLibm() {
        func geluDerivative(_ x: Float, _ y: Float) -> Float {
            var g: Float = 1, xv = x, yv = y, d: Float = 0
            asn_gelu_backward(&g, &xv, &yv, &d, 1)
            return d
        }
        var worst: Float = 0
        for i in -24_000...24_000 {
            let x = Float(i) / 2000
            var t = Tensor(shape: [1], data: [x])
            Ops.gelu(&t)
            let exact = 0.5 * (1 + erf(Double(x) / 2.0.squareRoot())) + Double(x) * exp(-0.5 * Double(x) * Double(x)) / (2 * Double.pi).squareRoot()
            worst = max(worst, abs(geluDerivative(x, t.data[0]) - Float(exact)))
        }
        for x: Float in [-1e4, -40, -13.5, 13.5, 40, 1e4] {
            var t = Tensor(shape: [1], data: [x])
            Ops.gelu(&t)
            #expect(abs(geluDerivative(x, t.data[0]) - (x > 0 ? 1 : 0)) < 1e-6, "GELU'(\(x))")
        }
        #expect(worst < 5e-6, "GELU derivative max abs error \(worst)")
    }

    /// The short-row softmax (rows of up to 8) against double precision, with score gaps far
    /// beyond exp's range, and the C kernel's rows.
    @Test func shortRowSoftmaxMatchesDoublePrecision() {
        var r = GradCheck.RNG(s: 25)
        for n in [1, 2, 3, 4, 8, 9] {
            var x = GradCheck.random([50, n], &r, scale: 30).data
            x[0] = 200  // a gap of ~200 to the rest of row 0 (when n > 1)
            var y = x
            y.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: 50, n: n) }
            var worst = 0.0
            for row in 0..<50 {
                let v = x[(row * n)..<((row + 1) * n)].map(Double.init), m = v.max()!
                let e = v.map { exp($0 - m) }, s = e.reduce(0, +)
                for i in 0..<n { worst = max(worst, abs(Double(y[row * n + i]) - e[i] / s)) }
            }
            #expect(worst < 1e-6, "softmax rows of \(n): \(worst)")
        }
    }
}
