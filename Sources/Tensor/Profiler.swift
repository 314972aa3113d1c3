import CKernels
import Foundation

/// Wall-clock time per named stage, collected only when AUTOSAM_PROFILE=1 (for benchmarks).
public enum Profiler {
    public static let enabled = ProcessInfo.processInfo.environment["AUTOSAM_PROFILE"] == "1"
    nonisolated(unsafe) static var totals: [String: Double] = [:]

    @inline(__always)
    public static func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        totals[name, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        return r
    }

    /// CPU time of the calling thread.
    static func threadCPUNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Adds one matrix product (from any thread): its multiply-adds and the calling thread's
    /// CPU time inside it.
    static func countGEMM(shape: String, multiplyAdds: Int, nanoseconds: UInt64) {
        asn_counter_add(0, UInt64(multiplyAdds))
        asn_counter_add(1, nanoseconds)
        asn_counter_add(2, 1)
        shapeLock.lock()
        var e = shapes[shape, default: (0, 0, 0)]
        e.calls += 1
        e.seconds += Double(nanoseconds) / 1e9
        e.multiplyAdds += Double(multiplyAdds)
        shapes[shape] = e
        shapeLock.unlock()
    }

    static let shapeLock = NSLock()
    nonisolated(unsafe) static var shapes: [String: (calls: Int, seconds: Double, multiplyAdds: Double)] = [:]

    /// The `top` product shapes by CPU time since the last call ("MxNxK" with T for a transposed
    /// operand), one line each, and resets them.
    public static func takeGEMMShapes(top: Int) -> [String] {
        shapeLock.lock()
        defer { shapes = [:]; shapeLock.unlock() }
        return shapes.sorted { $0.value.seconds > $1.value.seconds }.prefix(top).map { k, v in
            String(format: "%@: %d calls, %.2f CPU-s, %.0f GFLOPS", k, v.calls, v.seconds, 2 * v.multiplyAdds / 1e9 / max(v.seconds, 1e-9))
        }
    }

    /// The matrix products since the last call (counted only when enabled), and resets them:
    /// multiply-adds, CPU seconds of the threads that ran them, inside them, number of products.
    public static func takeGEMMCounts() -> (multiplyAdds: Double, threadSeconds: Double, calls: Int) {
        (Double(asn_counter_take(0)), Double(asn_counter_take(1)) / 1e9, Int(asn_counter_take(2)))
    }

    /// Stage totals, largest first, and resets them.
    public static func report() -> String {
        defer { totals = [:] }
        return totals.sorted { $0.value > $1.value }.map { String(format: "%@ %.3f s", $0.key, $0.value) }
            .joined(separator: ", ")
    }
}
