import CBLAS
import CDNNL
import CKernels
import Dispatch
import Foundation

/// Work splitting over the machine's cores. GEMM calls made inside `forEach` bodies run
/// single-threaded (OpenBLAS's pool is paused and each worker's OpenMP team size is 1 for
/// oneDNN), so the GEMM libraries' threads and ours never oversubscribe the cores.
public enum Parallel {
    /// Number of worker threads (cores), overridable with AUTOSAM_THREADS.
    public static let threads: Int = {
        if let s = ProcessInfo.processInfo.environment["AUTOSAM_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    private static let lock = NSLock()

    /// Runs `body(i)` for i in 0..<n on all cores. BLAS is single-threaded meanwhile.
    public static func forEach(_ n: Int, _ body: (Int) -> Void) {
        guard n > 1 && threads > 1 else {
            for i in 0..<n { body(i) }
            return
        }
        // A parallel region inside another (a worker calling a parallel kernel), or beside
        // one on another thread, runs serially: the cores are already busy, and waiting for
        // the lock from a worker would deadlock.
        guard lock.try() else {
            for i in 0..<n { body(i) }
            return
        }
        let saved = openblas_get_num_threads()
        let savedOMP = omp_get_max_threads()
        openblas_set_num_threads(1)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            // Per-thread OpenMP setting: the calling thread may run some iterations too, and
            // gets its own value back below.
            omp_set_num_threads(1)
            asn_flush_denormals()  // per-thread FP state (kernels.c)
            body(i)
        }
        omp_set_num_threads(savedOMP)
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
