import CBLAS

/// Matrix products through the BLAS (row-major sgemm).
public enum GEMM {
    /// C[M,N] = alpha * op(A) @ op(B) + beta * C, on raw row-major buffers.
    @inline(__always)
    public static func sgemm(
        _ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// x[N, in] @ weight[out, in]^T + bias[out] -> [N, out] (PyTorch's nn.Linear).
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let inF = weight.shape[1], outF = weight.shape[0]
        precondition(x.shape.last == inF, "linear: input \(x.shape) vs weight \(weight.shape)")
        let rows = x.count / inF
        var outShape = x.shape
        outShape[outShape.count - 1] = outF
        var out = [Float](repeating: 0, count: rows * outF)
        out.withUnsafeMutableBufferPointer { o in
            if let bias {
                for r in 0..<rows { for c in 0..<outF { o[r * outF + c] = bias.data[c] } }
            }
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    sgemm(false, true, m: rows, n: outF, k: inF, a: xp.baseAddress!, lda: inF,
                          b: wp.baseAddress!, ldb: inF, beta: bias == nil ? 0 : 1, c: o.baseAddress!, ldc: outF)
                }
            }
        }
        return Tensor(shape: outShape, data: out)
    }

    /// a[..., M, K] @ b[K, N] for a 2D right-hand side.
    public static func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
        let k = b.shape[0], n = b.shape[1]
        precondition(a.shape.last == k)
        let m = a.count / k
        var out = [Float](repeating: 0, count: m * n)
        a.data.withUnsafeBufferPointer { ap in
            b.data.withUnsafeBufferPointer { bp in
                out.withUnsafeMutableBufferPointer { o in
                    sgemm(false, false, m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n,
                          c: o.baseAddress!, ldc: n)
                }
            }
        }
        var shape = a.shape
        shape[shape.count - 1] = n
        return Tensor(shape: shape, data: out)
    }
}
