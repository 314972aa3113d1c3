import CKernels
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
            var dx: Tensor? = x.requiresGrad ? Tensor(gemmOutput: xv.shape, inner: outF) : nil
            var dw = Tensor(gemmOutput: wv.shape, inner: rows)
            g.data.withUnsafeBufferPointer { gp in
                if dx != nil {
                    wv.data.withUnsafeBufferPointer { wp in
                        dx!.data.withUnsafeMutableBufferPointer { dp in
                            GEMM.sgemm(false, false, m: rows, n: inF, k: outF, a: gp.baseAddress!, lda: outF,
                                       b: wp.baseAddress!, ldb: inF, c: dp.baseAddress!, ldc: inF)
                        }
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
            if b != nil { grads.append(Tensor(shape: [outF], data: reading(g) { gp in filled(outF) { addColumnSums(gp, rows: rows, n: outF, into: $0) } })) }
            return grads
        }
    }

    public static func + (a: Variable, b: Variable) -> Variable {
        precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
        let n = a.value.count
        let y = reading(a.value, b.value) { ap, bp in filled(n, zeroed: false) { yp in for i in 0..<n { yp[i] = ap[i] + bp[i] } } }
        return Variable(Tensor(shape: a.shape, data: y), parents: [a, b]) { g in [g, g] }
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
            [Tensor(shape: xv.shape, data: reading(g, xv) { gp, xp in filled(xv.count) { d in for i in 0..<xv.count where xp[i] > 0 { d[i] = gp[i] } } })]
        }
    }

    /// GELU (erf form), computed out of place in one pass; d/dx = Phi(x) + x * phi(x), with
    /// Phi(x) = GELU(x) / x taken from the forward output (a series near 0) and phi from a
    /// polynomial exp, in a C kernel compiled per instruction set (`asn_gelu_backward`).
    public func gelu() -> Variable {
        let xv = value
        let y = Ops.gelu(xv)
        let yv = y
        return Variable(y, parents: [self]) { g in
            [Tensor(shape: xv.shape, data: reading(g, xv, yv) { gp, xp, yp in
                filled(xv.count, zeroed: false) { d in asn_gelu_backward(gp, xp, yp, d, xv.count) }
            })]
        }
    }

    /// LayerNorm over the last dimension. Keeps each row's mean and 1/std for the backward
    /// (x-hat is recomputed from the input there); both passes are C kernels compiled per
    /// instruction set (`asn_layernorm_forward` / `_backward`).
    public func layerNorm(_ w: Variable, _ b: Variable, eps: Float) -> Variable {
        let n = w.value.count, rows = value.count / n
        precondition(value.shape.last == n, "layerNorm: \(value.shape) vs \(n)")
        let xv = value, wv = w.value
        let stats = Scratch(2 * rows)  // mean, 1/std per row
        let y = reading(xv, wv, b.value) { xp, wp, bp in
            filled(xv.count, zeroed: false) { yp in asn_layernorm_forward(xp, rows, n, wp, bp, eps, yp, stats.p) }
        }
        return Variable(Tensor(shape: xv.shape, data: y), parents: [self, w, b]) { g in
            let dw = Scratch(n), db = Scratch(n)
            let dx = reading(g, wv, xv) { gp, wp, xp in
                filled(xv.count, zeroed: false) { dxp in asn_layernorm_backward(gp, xp, rows, n, wp, stats.p, dxp, dw.p, db.p) }
            }
            return [Tensor(shape: xv.shape, data: dx), dw.tensor([n]), db.tensor([n])]
        }
    }

    /// Softmax over the last dimension.
    public func softmax() -> Variable {
        var y = value
        let n = value.shape.last!
        y.data.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: $0.count / n, n: n) }
        let yv = y
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
