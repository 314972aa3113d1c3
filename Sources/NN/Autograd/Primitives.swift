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
            var dx: Tensor? = x.requiresGrad ? Tensor(zeros: xv.shape) : nil, dw = Tensor(zeros: wv.shape)
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

    /// GELU (erf form); d/dx = Phi(x) + x * phi(x), with Phi(x) = GELU(x) / x taken from the
    /// forward output (a series near 0) and phi from a branch-free exp, so that the backward
    /// loop vectorises (no libm calls per element).
    public func gelu() -> Variable {
        let xv = value
        var y = xv
        Ops.gelu(&y)
        let yv = y
        return Variable(y, parents: [self]) { g in
            [Tensor(shape: xv.shape, data: reading(g, xv, yv) { gp, xp, yp in
                filled(xv.count, zeroed: false) { d in for i in 0..<xv.count { d[i] = gp[i] * geluDerivative(xp[i], yp[i]) } }
            })]
        }
    }

    /// LayerNorm over the last dimension. Keeps each row's mean and 1/std for the backward
    /// (x-hat is recomputed from the input there); rows whose length is a multiple of 16 run
    /// 16 lanes at a time.
    public func layerNorm(_ w: Variable, _ b: Variable, eps: Float) -> Variable {
        let n = w.value.count, rows = value.count / n
        precondition(value.shape.last == n, "layerNorm: \(value.shape) vs \(n)")
        let xv = value, wv = w.value
        let stats = Scratch(2 * rows)  // mean, 1/std per row
        let lanes = n % 16 == 0
        let y = reading(xv, wv, b.value) { xp, wp, bp in
            filled(xv.count, zeroed: false) { yp in
                for r in 0..<rows {
                    let xr = xp + r * n, yr = yp + r * n
                    var mean: Float = 0, v: Float = 0
                    if lanes {
                        var acc = SIMD16<Float>()
                        for i in stride(from: 0, to: n, by: 16) { acc += load16(xr + i) }
                        mean = acc.sum() / Float(n)
                        var acc2 = SIMD16<Float>()
                        for i in stride(from: 0, to: n, by: 16) {
                            let d = load16(xr + i) - mean
                            acc2 += d * d
                        }
                        v = acc2.sum()
                    } else {
                        for i in 0..<n { mean += xr[i] }
                        mean /= Float(n)
                        for i in 0..<n { v += (xr[i] - mean) * (xr[i] - mean) }
                    }
                    let iv = 1 / (v / Float(n) + eps).squareRoot()
                    stats.p[2 * r] = mean
                    stats.p[2 * r + 1] = iv
                    if lanes {
                        for i in stride(from: 0, to: n, by: 16) { store16((load16(xr + i) - mean) * iv * load16(wp + i) + load16(bp + i), yr + i) }
                    } else {
                        for i in 0..<n { yr[i] = (xr[i] - mean) * iv * wp[i] + bp[i] }
                    }
                }
            }
        }
        return Variable(Tensor(shape: xv.shape, data: y), parents: [self, w, b]) { g in
            let dw = Scratch(n), db = Scratch(n)
            let dx = reading(g, wv, xv) { gp, wp, xp in
                filled(xv.count, zeroed: false) { dxp in
                    for r in 0..<rows {
                        let gr = gp + r * n, xr = xp + r * n, dr = dxp + r * n
                        let mean = stats.p[2 * r], iv = stats.p[2 * r + 1]
                        var s1: Float = 0, s2: Float = 0
                        if lanes {
                            var a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
                            for i in stride(from: 0, to: n, by: 16) {
                                let gi = load16(gr + i), xh = (load16(xr + i) - mean) * iv
                                store16(load16(dw.p + i) + gi * xh, dw.p + i)
                                store16(load16(db.p + i) + gi, db.p + i)
                                let gx = gi * load16(wp + i)
                                a1 += gx
                                a2 += gx * xh
                            }
                            s1 = a1.sum() / Float(n)
                            s2 = a2.sum() / Float(n)
                            for i in stride(from: 0, to: n, by: 16) {
                                let xh = (load16(xr + i) - mean) * iv
                                store16(iv * (load16(gr + i) * load16(wp + i) - s1 - xh * s2), dr + i)
                            }
                        } else {
                            for i in 0..<n {
                                let xh = (xr[i] - mean) * iv
                                dw.p[i] += gr[i] * xh
                                db.p[i] += gr[i]
                                let gx = gr[i] * wp[i]
                                s1 += gx
                                s2 += gx * xh
                            }
                            s1 /= Float(n)
                            s2 /= Float(n)
                            for i in 0..<n { dr[i] = iv * (gr[i] * wp[i] - s1 - (xr[i] - mean) * iv * s2) }
                        }
                    }
                }
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

/// exp(z) for -87 <= z <= 0, branch-free: 2^n by exponent bits, a degree-6 Taylor
/// polynomial on the remainder (relative error ~1e-7). Below -87 the result is meaningless
/// (callers mask it).
@inline(__always)
func expNonPositive(_ z: Float) -> Float {
    let zc = z
    let shifted = zc * 1.442_695_04 + 12_582_912  // round(z / ln 2) in the low mantissa bits
    let n = shifted - 12_582_912
    let r = zc - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187e-6
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let e = (Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000 &+ 127) &<< 23
    return p * Float(bitPattern: UInt32(bitPattern: e))
}

/// GELU'(x) given x and GELU(x) = x Phi(x): Phi(x) = GELU(x) / x (a series for |x| < 0.05),
/// phi(x) from `expNonPositive` (zero for |x| > 13). Branch-free (selects by sign-bit masks)
/// so that loops over it vectorise.
@inline(__always)
func geluDerivative(_ x: Float, _ y: Float) -> Float {
    let c: Float = 0.398_942_280_401_432_7  // 1 / sqrt(2 pi)
    let x2 = x * x
    let e = expNonPositive(-0.5 * x2)
    let big = Int32(bitPattern: (169 - x2).bitPattern) &>> 31  // all ones where x^2 > 169
    let pdf = Float(bitPattern: UInt32(bitPattern: Int32(bitPattern: (c * e).bitPattern) & ~big))
    let small = Int32(bitPattern: (x2 - 0.0025).bitPattern) &>> 31  // all ones where |x| < 0.05
    let series = 0.5 + c * (x - x2 * x / 6), ratio = y / x
    let cdf = Float(bitPattern: UInt32(bitPattern: (Int32(bitPattern: series.bitPattern) & small) | (Int32(bitPattern: ratio.bitPattern) & ~small)))
    return cdf + x * pdf
}

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

@inline(__always)
func load16(_ p: UnsafeMutablePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

@inline(__always)
func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self) }
