import CBLAS
import CDNNL
import CKernels
import Dispatch
import Foundation

/// Work splitting over the machine's cores. GEMM calls made inside `forEach` bodies run
/// single-threaded (OpenBLAS's pool is paused and oneDNN's OpenMP team size is 1), so the GEMM
/// libraries' threads and ours never oversubscribe the cores.
///
/// Determinism: a product's result may depend on how many threads compute it (oneDNN splits
/// some products' sums between threads), so that number is a function of where the product
/// runs, never of timing or of what a thread did before: 1 inside a `forEach` body (whether
/// the region runs on all cores or, when the cores are taken by another region, serially on
/// its calling thread), `threads` outside. `pinGEMMThreads` sets it before every product.
public enum Parallel {
    /// Number of worker threads (cores), overridable with AUTOSAM_THREADS.
    public static let threads: Int = {
        if let s = ProcessInfo.processInfo.environment["AUTOSAM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    private static let lock = NSLock()

    /// Sets the calling thread's OpenMP team size for the matrix products it is about to run:
    /// 1 inside a parallel region, `threads` outside (a per-thread setting, cheap to repeat).
    @inline(__always)
    public static func pinGEMMThreads() {
        let want = Int32(asn_parallel_depth() > 0 ? 1 : threads)
        if omp_get_max_threads() != want { omp_set_num_threads(want) }
    }

    /// Runs `body(i)` for i in 0..<n on all cores. BLAS is single-threaded meanwhile.
    public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        // A region inside another (a worker calling a parallel kernel), or beside one on
        // another thread, runs serially: the cores are already busy, and waiting for the lock
        // from a worker would deadlock. Its body counts as inside a region all the same.
        guard n > 1 && threads > 1, lock.try() else {
            asn_parallel_enter()
            asn_flush_denormals()  // the same FP state as a worker's
            for i in 0..<n { body(i) }
            asn_parallel_leave()
            return
        }
        let saved = openblas_get_num_threads()
        openblas_set_num_threads(1)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            asn_parallel_enter()
            asn_flush_denormals()  // per-thread FP state (kernels.c)
            body(i)
            asn_parallel_leave()
        }
        openblas_set_num_threads(saved)
        lock.unlock()
    }

    /// `forEach` collecting `body(i)` into an array in index order.
    public static func map<T>(_ n: Int, _ body: (Int) -> T) -> [T] {
        var out = [T?](repeating: nil, count: n)
        out.withUnsafeMutableBufferPointer { op in
            let o = op.baseAddress!
            forEach(n) { i in o[i] = body(i) }
        }
        return out.map { $0! }
    }

    /// Splits 0..<n into contiguous chunks, one per thread, and runs `body(range)` for each.
    public static func chunks(_ n: Int, minimum: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(threads, n / max(minimum, 1)))
        if parts == 1 {
            body(0..<n)
            return
        }
        forEach(parts) { p in
            let lo = n * p / parts, hi = n * (p + 1) / parts
            body(lo..<hi)
        }
    }
}
