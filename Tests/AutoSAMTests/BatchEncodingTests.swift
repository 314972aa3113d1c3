import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import Tensor

/// A frame's fields encoded as one batch through the cache: every one computed once, then hit.
@Suite struct BatchEncodingTests {
    func fields(_ n: Int, side: Int) -> [[Float]] {
        var g = SplitMix64(seed: 5)
        return (0..<n).map { i in (0..<(side * side)).map { p in Float((p * (i + 3)) % 251) + Float(g.unit()) * 4 } }
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
