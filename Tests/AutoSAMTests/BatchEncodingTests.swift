import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import Tensor

/// A frame's fields encoded as one batch, one field per core: every field gets what a lone
/// run gives it, and through the cache every one is computed once, then hit.
@Suite struct BatchEncodingTests {
    func fields(_ n: Int, side: Int) -> [[Float]] {
        var g = SplitMix64(seed: 5)
        return (0..<n).map { i in (0..<(side * side)).map { p in Float((p * (i + 3)) % 251) + Float(g.unit()) * 4 } }
    }

    @Test(arguments: [Precision.fp32, .bf16])
    func concurrentEncodingsMatchLoneOnes(precision: Precision) throws {
        let enc = try FrozenEncoder(source: "tiny", precision: precision)
        var plan = PreprocessingPlan.paper(encoderSize: enc.config.imageSize)
        plan.sliceSize = enc.config.imageSize
        let inputs = fields(6, side: plan.sliceSize)
        // Each pair of equal fields runs on two threads at once.
        let together = enc.embedAll(inputs.flatMap { [$0, $0] }, plan: plan, cache: nil)
        for (i, field) in inputs.enumerated() {
            let alone = enc.embed(field, plan: plan, cache: nil)
            let a = together[2 * i], b = together[2 * i + 1]
            #expect(a == b, "field \(i): the two concurrent runs differ")
            let scale = alone.data.map(abs).max()!
            let err = zip(a.data, alone.data).map { abs($0 - $1) }.max()!
            // A run's thread count may change the summation order, nothing more.
            #expect(err <= 1e-4 * scale, "field \(i): \(err) vs magnitude \(scale)")
        }
    }

    @Test func cacheCountsBatchMissesAndHits() throws {
        let dir = NSTemporaryDirectory() + "autosam-par-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = try EmbeddingCache(folder: dir)
        let enc = try FrozenEncoder(source: "tiny")
        var plan = PreprocessingPlan.paper(encoderSize: enc.config.imageSize)
        plan.sliceSize = enc.config.imageSize
        let inputs = fields(8, side: plan.sliceSize)
        let first = enc.embedAll(inputs, plan: plan, cache: cache)
        let second = enc.embedAll(inputs, plan: plan, cache: cache)
        #expect(cache.misses == 8 && cache.hits == 8 && first == second)
    }
}
