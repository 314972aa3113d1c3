import Dispatch
import Foundation
import Testing

@testable import Tensor

/// The matrix-product accounting that `autosam bench fit` reports under AUTOSAM_PROFILE=1:
/// counts from many threads add up exactly, taking them resets them, and the shape table is
/// ordered by CPU time.
@Suite(.serialized) struct ProfilerTests {
    @Test func productCountsAddUpAcrossThreadsAndReset() {
        _ = Profiler.takeGEMMCounts()
        _ = Profiler.takeGEMMShapes(top: 0)
        // 400 products from 4 threads at once: 100 of 2x3x4 (1 ms each), 300 of 5x5x5 (2 ms).
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            if i % 4 == 0 {
                Profiler.countGEMM(shape: "2x3x4", multiplyAdds: 24, nanoseconds: 1_000_000)
            } else {
                Profiler.countGEMM(shape: "5x5x5", multiplyAdds: 125, nanoseconds: 2_000_000)
            }
        }
        let counts = Profiler.takeGEMMCounts()
        #expect(counts.calls == 400)
        #expect(counts.multiplyAdds == 100 * 24 + 300 * 125)
        #expect(abs(counts.threadSeconds - (0.1 + 0.6)) < 1e-9)
        let shapes = Profiler.takeGEMMShapes(top: 5)
        #expect(shapes.count == 2)
        #expect(shapes.first?.hasPrefix("5x5x5: 300 calls, 0.60 CPU-s") == true, "\(shapes)")
        #expect(shapes.last?.hasPrefix("2x3x4: 100 calls, 0.10 CPU-s") == true, "\(shapes)")
        // Taken means reset.
        let again = Profiler.takeGEMMCounts()
        #expect(again.calls == 0 && again.multiplyAdds == 0 && again.threadSeconds == 0)
        #expect(Profiler.takeGEMMShapes(top: 5).isEmpty)
    }

    /// Stages timed from many threads at once (the encoder runs slices one per core): every
    /// stage is kept, and nothing crashes (an unguarded dictionary did, 1 run in 3). Other
    /// suites run meanwhile and may time their own stages while profiling is on, so only this
    /// test's stages (named "ptest-N") are compared.
    @Test func stagesTimedFromManyThreadsAtOnce() {
        func ours(_ report: String) -> Set<String> {
            Set(report.split(separator: ",").compactMap { e in
                let name = e.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init)
                return name?.hasPrefix("ptest-") == true ? name : nil
            })
        }
        _ = Profiler.report()
        Profiler.enabled = true
        DispatchQueue.concurrentPerform(iterations: 4000) { i in
            Profiler.measure("ptest-\(i % 8)") { _ = usleep(1) }
        }
        Profiler.enabled = false
        #expect(ours(Profiler.report()) == Set((0..<8).map { "ptest-\($0)" }))
        #expect(ours(Profiler.report()).isEmpty, "a report resets the totals")
    }

    @Test func threadCPUTimeAdvancesWithWork() {
        let t0 = Profiler.threadCPUNanoseconds()
        var x: Double = 0
        for i in 0..<5_000_000 { x += Double(i & 7) * 1e-9 }
        let t1 = Profiler.threadCPUNanoseconds()
        #expect(x > 0)
        #expect(t1 > t0, "thread CPU time did not advance over a busy loop")
    }
}
