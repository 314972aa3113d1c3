import Foundation
import Tensor

/// One labelled short-axis slice, encoded: the embedding and the labels at the head's output
/// resolution.
public struct TrainingSample: Sendable {
    /// The head's input [C, g, g]: held in memory, or (samples built with an embedding cache)
    /// read back from the cache each time it is asked for, so a training set of thousands of
    /// LiteMedSAM views (4 MB each in float32) does not have to fit in memory. Both give the
    /// same values (the cache's float16 rounding applies to a first run too).
    public var embedding: Tensor {
        get {
            switch storage {
            case .memory(let t): t
            case .cache(let c): c.load()
            }
        }
        set { storage = .memory(newValue) }
    }
    public var labels: [Int]  // [4g * 4g]
    public var source: String
    /// Samples with the same slice are views of one slice (the plain one and its augmented
    /// views): an epoch trains on one view of each slice, drawn at random. nil: a sample of
    /// its own.
    public var slice: String?
    var storage: Storage

    enum Storage: Sendable {
        case memory(Tensor)
        case cache(CachedEmbedding)
    }

    public init(embedding: Tensor, labels: [Int], source: String, slice: String? = nil) {
        self.init(storage: .memory(embedding), labels: labels, source: source, slice: slice)
    }

    init(storage: Storage, labels: [Int], source: String, slice: String?) {
        self.storage = storage
        self.labels = labels
        self.source = source
        self.slice = slice
    }

    /// Whether the embedding is held in memory (false: read from the cache when used).
    public var isInMemory: Bool {
        if case .memory = storage { return true }
        return false
    }

    /// The sample with its embedding standardised by `statistics` (a cached one on each read).
    public func standardized(by statistics: ChannelStatistics) -> TrainingSample {
        var s = self
        switch storage {
        case .memory(let t): s.storage = .memory(statistics.standardize(t))
        case .cache(var c):
            c.statistics = statistics
            s.storage = .cache(c)
        }
        return s
    }
}

/// An embedding in the cache, by its key, with how to compute it again if the entry is gone
/// (removed, or found damaged) and the standardisation to apply after reading it.
struct CachedEmbedding: Sendable {
    let cache: EmbeddingCache
    let key: String
    /// The head's input from the encoder's raw embedding (the plan's `headInput`).
    let headInput: @Sendable (Tensor) -> Tensor
    /// The encoder's raw embedding of the sample's field, made again from the slice.
    let compute: @Sendable () -> Tensor
    var statistics: ChannelStatistics?

    func load() -> Tensor {
        let t = headInput(cache.embedding(key: key, compute: compute))
        return statistics?.standardize(t) ?? t
    }
}
