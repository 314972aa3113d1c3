import Foundation
import Tensor

// Differentiable primitives. Each forward computes with the Tensor kernels; its backward sits
// right below it. Shapes: matrices are row-major [rows, cols]; images are [C, H, W].

extension Variable {
    /// x[N, in] @ W[out, in]^T + b[out]
    public static func linear(_ x: Variable, _ w: Variable, _ b: Variable?) -> Variable {
        let y = GEMM.linear(x.value, weight: w.value, bias: b?.value)
        let inF = w.shape[1], outF = w.shape[0], rows = x.value.count / inF
        let xv = x.value, wv = w.value
        return Variable(y, parents: [x, w] + (b.map { [$0] } ?? [])) { g in
            // dx = g @ W ; dW = g^T @ x ; db = sum over rows of g
            var dx = Tensor(zeros: xv.shape), dw = Tensor(zeros: wv.shape)
            g.data.withUnsafeBufferPointer { gp in
                wv.data.withUnsafeBufferPointer { wp in
                    dx.data.withUnsafeMutableBufferPointer { dp in
                        GEMM.sgemm(false, false, m: rows, n: inF, k: outF, a: gp.baseAddress!, lda: outF,
                                   b: wp.baseAddress!, ldb: inF, c: dp.baseAddress!, ldc: inF)
                    }
                }
                xv.data.withUnsafeBufferPointer { xp in
                    dw.data.withUnsafeMutableBufferPointer { dp in
                        GEMM.sgemm(true, false, m: outF, n: inF, k: rows, a: gp.baseAddress!, lda: outF,
                                   b: xp.baseAddress!, ldb: inF, c: dp.baseAddress!, ldc: inF)
                    }
                }
            }
            var grads: [Tensor?] = [dx, dw]
            if b != nil {
                var db = Tensor(zeros: [outF])
                for r in 0..<rows { for c in 0..<outF { db.data[c] += g.data[r * outF + c] } }
                grads.append(db)
            }
            return grads
        }
    }

    public static func + (a: Variable, b: Variable) -> Variable {
        precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
        var y = a.value
        Ops.add(&y, b.value)
        return Variable(y, parents: [a, b]) { g in [g, g] }
    }

    public static func * (a: Variable, b: Variable) -> Variable {
        precondition(a.shape == b.shape, "mul: \(a.shape) vs \(b.shape)")
        let av = a.value, bv = b.value
        let y = Tensor(shape: av.shape, data: zip(av.data, bv.data).map { $0 * $1 })
        return Variable(y, parents: [a, b]) { g in
            [Tensor(shape: av.shape, data: zip(g.data, bv.data).map { $0 * $1 }),
             Tensor(shape: av.shape, data: zip(g.data, av.data).map { $0 * $1 })]
        }
    }

    public func relu() -> Variable {
        let xv = value
        var y = xv
        Ops.relu(&y)
        return Variable(y, parents: [self]) { g in
            [Tensor(shape: xv.shape, data: zip(g.data, xv.data).map { $1 > 0 ? $0 : 0 })]
        }
    }

    /// GELU (erf form); d/dx = Phi(x) + x * phi(x).
    public func gelu() -> Variable {
        let xv = value
        var y = xv
        Ops.gelu(&y)
        return Variable(y, parents: [self]) { g in
            let inv = 1 / Float(2).squareRoot(), c = 1 / Float(2 * Double.pi).squareRoot()
            return [Tensor(shape: xv.shape, data: zip(g.data, xv.data).map { gi, x in
                gi * (0.5 * (1 + erff(x * inv)) + x * c * expf(-0.5 * x * x))
            })]
        }
    }

    /// LayerNorm over the last dimension.
    public func layerNorm(_ w: Variable, _ b: Variable, eps: Float) -> Variable {
        let n = w.value.count, rows = value.count / n
        let xv = value
        var xhat = [Float](repeating: 0, count: xv.count), inv = [Float](repeating: 0, count: rows)
        var y = [Float](repeating: 0, count: xv.count)
        for r in 0..<rows {
            var mean: Float = 0
            for i in 0..<n { mean += xv.data[r * n + i] }
            mean /= Float(n)
            var v: Float = 0
            for i in 0..<n { v += (xv.data[r * n + i] - mean) * (xv.data[r * n + i] - mean) }
            inv[r] = 1 / (v / Float(n) + eps).squareRoot()
            for i in 0..<n {
                xhat[r * n + i] = (xv.data[r * n + i] - mean) * inv[r]
                y[r * n + i] = xhat[r * n + i] * w.value.data[i] + b.value.data[i]
            }
        }
        let wv = w.value
        return Variable(Tensor(shape: xv.shape, data: y), parents: [self, w, b]) { g in
            var dx = [Float](repeating: 0, count: xv.count)
            var dw = [Float](repeating: 0, count: n), db = [Float](repeating: 0, count: n)
            for r in 0..<rows {
                var s1: Float = 0, s2: Float = 0
                for i in 0..<n {
                    let gi = g.data[r * n + i], xh = xhat[r * n + i]
                    dw[i] += gi * xh
                    db[i] += gi
                    let gx = gi * wv.data[i]
                    s1 += gx
                    s2 += gx * xh
                }
                for i in 0..<n {
                    let gx = g.data[r * n + i] * wv.data[i]
                    dx[r * n + i] = inv[r] * (gx - s1 / Float(n) - xhat[r * n + i] * s2 / Float(n))
                }
            }
            return [Tensor(shape: xv.shape, data: dx), Tensor(shape: [n], data: dw), Tensor(shape: [n], data: db)]
        }
    }

    /// Softmax over the last dimension.
    public func softmax() -> Variable {
        var y = value
        Ops.softmax(&y)
        let yv = y, n = value.shape.last!
        return Variable(y, parents: [self]) { g in
            var dx = [Float](repeating: 0, count: yv.count)
            for r in 0..<(yv.count / n) {
                var dot: Float = 0
                for i in 0..<n { dot += g.data[r * n + i] * yv.data[r * n + i] }
                for i in 0..<n { dx[r * n + i] = yv.data[r * n + i] * (g.data[r * n + i] - dot) }
            }
            return [Tensor(shape: yv.shape, data: dx)]
        }
    }

    /// Sum of all elements (a scalar, shape [1]).
    public func sum() -> Variable {
        let shape = value.shape
        return Variable(Tensor(shape: [1], data: [value.data.reduce(0, +)]), parents: [self]) { g in
            [Tensor(repeating: g.data[0], shape: shape)]
        }
    }

    /// Same values, another shape.
    public func reshaped(_ shape: [Int]) -> Variable {
        let old = value.shape
        return Variable(value.reshaped(shape), parents: [self]) { g in [g.reshaped(old)] }
    }

    /// Axis permutation.
    public func permuted(_ order: [Int]) -> Variable {
        var inverse = [Int](repeating: 0, count: order.count)
        for (i, o) in order.enumerated() { inverse[o] = i }
        return Variable(value.permuted(order), parents: [self]) { g in [g.permuted(inverse)] }
    }
}
