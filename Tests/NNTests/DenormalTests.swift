import CKernels
import Testing

@testable import Tensor

/// Subnormal floats are flushed to zero on the calling thread (set for the main thread when the
/// kernels load, inherited by threads made later) and on every parallel task: training's tiny gradients otherwise cost a microcode assist per
/// operation in the GEMMs (docs/PERFORMANCE.md).
@Suite struct DenormalTests {
    /// inputs[0] x inputs[1], computed at run time (not inlined, so not folded by the compiler).
    @inline(never) static func product(_ inputs: [Float]) -> Float { inputs[0] * inputs[1] }

    @Test func subnormalResultsAreZeroOnMainThreadAndWorkers() {
        let inputs: [Float] = [Float.leastNormalMagnitude, 0.5]
        #expect(Self.product(inputs) == 0, "the test's thread keeps subnormals")
        var results = [Float](repeating: -1, count: 8)
        results.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            Parallel.forEach(8) { i in o[i] = Self.product(inputs) }
        }
        #expect(results.allSatisfy { $0 == 0 }, "a worker keeps subnormals: \(results)")
        // Denormals-are-zero: a subnormal input behaves as zero (2^-149 x 2^30 would be the
        // normal 2^-119 otherwise).
        let sub = Float(bitPattern: 1)  // the smallest subnormal, stored, not computed
        #expect(Self.product([sub, 1_073_741_824]) == 0)
    }
}
