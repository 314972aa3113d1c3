import Tensor

// Matrix primitives for attention: products, row slices, row concatenation, scaling.

extension Variable {
    /// a[M, K] @ b[K, N], or a @ b^T with b[N, K] when `transposeB`.
    public static func matmul(_ a: Variable, _ b: Variable, transposeB: Bool = false) -> Variable {
        let av = a.value, bv = b.value
        let m = av.shape[0], k = av.shape[1], n = transposeB ? bv.shape[0] : bv.shape[1]
        precondition((transposeB ? bv.shape[1] : bv.shape[0]) == k, "matmul: \(av.shape) x \(bv.shape)")
        var y = Tensor(gemmOutput: [m, n], inner: k)
        av.data.withUnsafeBufferPointer { ap in
            bv.data.withUnsafeBufferPointer { bp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    GEMM.sgemm(false, transposeB, m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!,
                               ldb: transposeB ? k : n, c: yp.baseAddress!, ldc: n)
                }
            }
        }
        return Variable(y, parents: [a, b]) { g in
            var da = Tensor(gemmOutput: av.shape, inner: n), db = Tensor(gemmOutput: bv.shape, inner: m)
            g.data.withUnsafeBufferPointer { gp in
                bv.data.withUnsafeBufferPointer { bp in
                    da.data.withUnsafeMutableBufferPointer { dp in
                        // da = g @ op(b)^T
                        GEMM.sgemm(false, !transposeB, m: m, n: k, k: n, a: gp.baseAddress!, lda: n, b: bp.baseAddress!,
                                   ldb: transposeB ? k : n, c: dp.baseAddress!, ldc: k)
                    }
                }
                av.data.withUnsafeBufferPointer { ap in
                    db.data.withUnsafeMutableBufferPointer { dp in
                        if transposeB {  // db[N, K] = g^T @ a
                            GEMM.sgemm(true, false, m: n, n: k, k: m, a: gp.baseAddress!, lda: n, b: ap.baseAddress!,
                                       ldb: k, c: dp.baseAddress!, ldc: k)
                        } else {  // db[K, N] = a^T @ g
                            GEMM.sgemm(true, false, m: k, n: n, k: m, a: ap.baseAddress!, lda: k, b: gp.baseAddress!,
                                       ldb: n, c: dp.baseAddress!, ldc: n)
                        }
                    }
                }
            }
            return [da, db]
        }
    }

    /// Rows `range` of a matrix [R, C].
    public func rows(_ range: Range<Int>) -> Variable {
        let c = value.count / value.shape[0], shape = value.shape
        let y = Tensor(shape: [range.count] + shape.dropFirst(), data: Array(value.data[(range.lowerBound * c)..<(range.upperBound * c)]))
        return Variable(y, parents: [self]) { g in
            var d = Tensor(zeros: shape)
            d.data.replaceSubrange((range.lowerBound * c)..<(range.upperBound * c), with: g.data)
            return [d]
        }
    }

    /// Matrices stacked along the first axis.
    public static func concatRows(_ parts: [Variable]) -> Variable {
        let tail = Array(parts[0].shape.dropFirst())
        let rows = parts.map { $0.shape[0] }
        let y = Tensor(shape: [rows.reduce(0, +)] + tail, data: parts.flatMap(\.value.data))
        let sizes = parts.map(\.value.count)
        return Variable(y, parents: parts) { g in
            var out: [Tensor?] = [], start = 0
            for (p, n) in zip(parts, sizes) {
                out.append(Tensor(shape: p.shape, data: Array(g.data[start..<(start + n)])))
                start += n
            }
            return out
        }
    }

    /// Multiplies by a constant.
    public func scaled(by s: Float) -> Variable {
        Variable(Tensor(shape: value.shape, data: value.data.map { $0 * s }), parents: [self]) { g in
            [Tensor(shape: g.shape, data: g.data.map { $0 * s })]
        }
    }
}
