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

    /// Stage totals, largest first, and resets them.
    public static func report() -> String {
        defer { totals = [:] }
        return totals.sorted { $0.value > $1.value }.map { String(format: "%@ %.3f s", $0.key, $0.value) }
            .joined(separator: ", ")
    }
}
