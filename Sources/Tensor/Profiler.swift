import Foundation

/// Wall-clock time per named stage, collected only when AUTOSAM_PROFILE=1 (for benchmarks).
/// Safe from any thread (slices are encoded one per core).
public enum Profiler {
    /// From AUTOSAM_PROFILE; tests switch it on and off.
    nonisolated(unsafe) public static var enabled = ProcessInfo.processInfo.environment["AUTOSAM_PROFILE"] == "1"
    /// Guards `totals`, `shapes` and `gemmTotals`.
    static let lock = NSLock()
    nonisolated(unsafe) static var totals: [String: Double] = [:]

    @inline(__always)
    public static func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let r = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        lock.lock()
        totals[name, default: 0] += seconds
        lock.unlock()
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
        lock.lock()
        gemmTotals.calls += 1
        gemmTotals.seconds += Double(nanoseconds) / 1e9
        gemmTotals.multiplyAdds += Double(multiplyAdds)
        var e = shapes[shape, default: (0, 0, 0)]
        e.calls += 1
        e.seconds += Double(nanoseconds) / 1e9
        e.multiplyAdds += Double(multiplyAdds)
        shapes[shape] = e
        lock.unlock()
    }

    /// Per shape, and all shapes together (taken and reset separately).
    nonisolated(unsafe) static var shapes: [String: (calls: Int, seconds: Double, multiplyAdds: Double)] = [:]
    nonisolated(unsafe) static var gemmTotals: (calls: Int, seconds: Double, multiplyAdds: Double) = (0, 0, 0)

    /// The `top` product shapes by CPU time since the last call ("MxNxK" with T for a transposed
    /// operand), one line each, and resets them.
    public static func takeGEMMShapes(top: Int) -> [String] {
        lock.lock()
        defer { shapes = [:]; lock.unlock() }
        return shapes.sorted { $0.value.seconds > $1.value.seconds }.prefix(top).map { k, v in
            String(format: "%@: %d calls, %.2f CPU-s, %.0f GFLOPS", k, v.calls, v.seconds, 2 * v.multiplyAdds / 1e9 / max(v.seconds, 1e-9))
        }
    }

    /// The matrix products since the last call (counted only when enabled), and resets them:
    /// multiply-adds, CPU seconds of the threads that ran them, inside them, number of products.
    public static func takeGEMMCounts() -> (multiplyAdds: Double, threadSeconds: Double, calls: Int) {
        lock.lock()
        defer { gemmTotals = (0, 0, 0); lock.unlock() }
        return (gemmTotals.multiplyAdds, gemmTotals.seconds, gemmTotals.calls)
    }

    /// Stage totals, largest first, and resets them.
    public static func report() -> String {
        lock.lock()
        defer { totals = [:]; lock.unlock() }
        return totals.sorted { $0.value > $1.value }.map { String(format: "%@ %.3f s", $0.key, $0.value) }
            .joined(separator: ", ")
    }
}
