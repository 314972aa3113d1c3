import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Crash points for the fault-injection tests (docs/RELIABILITY.md): with
/// `AUTOSAM_CRASH_AT=<point>` in its environment the daemon kills itself with SIGKILL the first
/// time it reaches that point, as a power cut would stop it there. Unset (always, in service),
/// each point costs one comparison.
public enum FaultInjection {
    /// Every point, in the order a study meets them.
    public static let points = [
        "claim.recorded", "claim.moved", "processing.recorded", "publish.staged", "publish.renamed",
        "finish.cohort", "finish.archived", "finish.done", "fail.reasoned", "fail.moved", "fail.recorded",
        "refit.training",
    ]

    static let crashAt = ProcessInfo.processInfo.environment["AUTOSAM_CRASH_AT"]

    @inline(__always) static func point(_ name: String) {
        guard let c = crashAt, c == name else { return }
        FileHandle.standardError.write(Data("crash injected at \(name)\n".utf8))
        kill(getpid(), SIGKILL)
    }
}
