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

/// Training samples built with a cache hold no embedding: they read it back when used, get what
/// samples built in memory get (float16-rounded, as every cached run), and compute it again
/// when the cache entry is gone.
@Suite struct CachedSampleTests {
    @Test func cachedSamplesReadBackWhatInMemorySamplesHold() throws {
        let dir = NSTemporaryDirectory() + "autosam-lazy-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (image, labels) = try PhantomCases.frames(patient: 2, slices: 2, dir: dir + "/ph")[0]
        let enc = try FrozenEncoder(source: "tiny")
        var plan = HeadSetup.plan(for: enc, head: .cnn, views: 2)
        plan.augmentation?.tissueContrast = true
        plan.augmentation?.shading = 0.3
        let cache = try EmbeddingCache(folder: dir + "/cache")
        func build(_ cache: EmbeddingCache?) throws -> [TrainingSample] {
            try SliceData.samples(image: image, labels: labels, name: "p2", plan: plan, encoder: enc, cache: cache, augment: true)
        }
        let memory = try build(nil), cached = try build(cache)
        #expect(memory.count == 6 && cached.count == 6)
        #expect(memory.allSatisfy(\.isInMemory) && !cached.contains(where: \.isInMemory))
        func rounded(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, data: t.data.map { Float(Float16($0)) }) }
        for (m, c) in zip(memory, cached) {
            #expect(c.labels == m.labels && c.source == m.source && c.slice == m.slice)
            #expect(c.embedding == rounded(m.embedding), "\(c.source)")
        }
        // The entries removed: each sample computes its embedding again, the same.
        let before = cached.map(\.embedding)
        for f in try FileManager.default.contentsOfDirectory(atPath: dir + "/cache") { try FileManager.default.removeItem(atPath: dir + "/cache/" + f) }
        let misses = cache.misses
        #expect(cached.map(\.embedding) == before)
        #expect(cache.misses == misses + cached.count)
        // Standardisation applies on each read, as it applies to samples in memory.
        var train = cached, validation = Array(cached.prefix(2)), p = plan
        var trainM = memory.map { TrainingSample(embedding: rounded($0.embedding), labels: $0.labels, source: $0.source, slice: $0.slice) }
        var validationM = Array(trainM.prefix(2)), pM = plan
        SliceData.standardizeForTraining(train: &train, validation: &validation, plan: &p)
        SliceData.standardizeForTraining(train: &trainM, validation: &validationM, plan: &pM)
        #expect(p.embeddingStatistics != nil && p.embeddingStatistics == pM.embeddingStatistics)
        #expect(!train.contains(where: \.isInMemory) && train.map(\.embedding) == trainM.map(\.embedding))
        #expect(validation.map(\.embedding) == validationM.map(\.embedding))
    }
}
