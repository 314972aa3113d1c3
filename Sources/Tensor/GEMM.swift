import CBLAS
import CDNNL
import Foundation

/// Which library computes matrix products. oneDNN picks its AVX-512 / AMX kernels at run time
/// on its own; Debian's OpenBLAS 0.3.21 does not recognise recent CPUs and falls back to slow
/// generic kernels unless OPENBLAS_CORETYPE is set (see docs/PERFORMANCE.md for the numbers).
public enum GEMMBackend: String, Sendable, CaseIterable {
    case onednn
    case openblas
}

/// Matrix products (row-major sgemm) through the chosen backend.
extension GEMM {
    /// OpenBLAS's own description of its build and the core type it runs, for `autosam info`.
    public static var blasConfig: String {
        guard let c = openblas_get_config() else { return "unknown" }
        return String(cString: c) + " core=" + (openblas_get_corename().map { String(cString: $0) } ?? "?")
    }

    public static var blasThreads: Int { Int(openblas_get_num_threads()) }
}

public enum GEMM {
    /// The backend, from AUTOSAM_GEMM (onednn | openblas); oneDNN by default.
    public static let defaultBackend: GEMMBackend =
        ProcessInfo.processInfo.environment["AUTOSAM_GEMM"].flatMap(GEMMBackend.init(rawValue:)) ?? .onednn

    nonisolated(unsafe) public static var backend: GEMMBackend = defaultBackend

    /// C[M,N] = alpha * op(A) @ op(B) + beta * C, on raw row-major buffers.
    @inline(__always)
    public static func sgemm(
        _ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if Profiler.enabled {
            // The calling thread's CPU time, not wall time: a descheduled thread is not computing.
            let t0 = Profiler.threadCPUNanoseconds()
            defer { Profiler.countGEMM(shape: "\(m)x\(n)x\(k)\(transA ? " A^T" : "")\(transB ? " B^T" : "")", multiplyAdds: m * n * k, nanoseconds: Profiler.threadCPUNanoseconds() &- t0) }
            product(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        } else {
            product(transA, transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }

    @inline(__always)
    static func product(
        _ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        switch backend {
        case .onednn:
            Parallel.pinGEMMThreads()
            let st = dnnl_sgemm(
                transA ? 84 : 78, transB ? 84 : 78, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb),
                beta, c, Int64(ldc))
            precondition(st == dnnl_success, "dnnl_sgemm failed (\(st)) for \(m)x\(n)x\(k)")
        case .openblas:
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
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
