import CardiacImaging
import Foundation
import Tensor
import SegmentAnything

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

public enum SliceData {
    /// Encodes every slice of the ED and ES frames of the given patients (through the cache):
    /// the plain view, plus the plan's augmented views when `augment` is set (training).
    public static func samples(
        patients: [ACDCPatient], plan: PreprocessingPlan, encoder: FrozenEncoder, cache: EmbeddingCache?,
        maxClass: UInt8 = 3, augment: Bool = false, progress: ((String) -> Void)? = nil
    ) throws -> [TrainingSample] {
        var out: [TrainingSample] = []
        for p in patients {
            for frame in Set([p.info.ed, p.info.es]).sorted() {
                let (image, labels) = try p.labelledFrame(frame)
                out += try samples(image: image, labels: labels, name: "\(p.id) frame \(frame)", plan: plan, encoder: encoder,
                                   cache: cache, maxClass: maxClass, augment: augment)
                progress?("\(p.id) frame \(frame): \(image.shape.nz) slices encoded")
            }
        }
        return out
    }

    /// The samples of one labelled 3D frame (same grid, labels within the classes).
    public static func samples(
        image: Volume, labels: LabelMap, name: String, plan: PreprocessingPlan, encoder: FrozenEncoder,
        cache: EmbeddingCache?, maxClass: UInt8 = 3, augment: Bool = false
    ) throws -> [TrainingSample] {
        try labels.validate(maxClass: maxClass)
        let side = 4 * encoder.config.gridSize
        let views = augment ? (plan.augmentation?.views ?? 0) : 0
        // Every slice and view of the frame, then their embeddings (one per core).
        var fields: [[Float]] = [], pending: [(key: String, v: Int, labels: [Int], field: @Sendable () -> [Float])] = []
        let heart = views > 0 ? plan.referenceHeartCenter(labels) : .zero
        for k in 0..<image.shape.nz {
            let slice = try image.slice(k), labelSlice = labels.slice(k)
            let key = "\(name) slice \(k)"
            for v in 0...views {
                let view = v == 0 ? nil : plan.trainingView(v, key: key, centerMM: heart)
                let field: @Sendable () -> [Float] = { plan.trainingField(slice, labels: labelSlice, view: view) }
                fields.append(field())
                pending.append((key, v, plan.labels(labelSlice, side: side, view: view).map(Int.init), field))
            }
        }
        let embeddings = encoder.embedAll(fields, plan: plan, cache: cache)
        return zip(pending, zip(fields, embeddings)).map { p, done in
            let source = p.v == 0 ? p.key : "\(p.key) view \(p.v)"
            // With a cache the embedding is read back when used (it is there now).
            guard let cache else { return TrainingSample(embedding: done.1, labels: p.labels, source: source, slice: p.key) }
            let field = p.field
            let cached = CachedEmbedding(
                cache: cache, key: EmbeddingCache.key(encoder: encoder.identity, plan: plan, pixels: done.0),
                // As a region of one, like embedAll's runs: the same thread count, the same sums.
                headInput: { plan.headInput($0) }, compute: { Parallel.map(1) { _ in encoder.embed(plan.encoderInput(field())) }[0] })
            return TrainingSample(storage: .cache(cached), labels: p.labels, source: source, slice: p.key)
        }
    }
}

extension PreprocessingPlan {
    /// The windowed field of a training view (nil: the plain field), with the augmentation's
    /// appearance randomisation where it asks for it.
    func trainingField(_ slice: Slice2D<Float>, labels labelSlice: Slice2D<UInt8>, view: AugmentedView?) -> [Float] {
        var field = window(slice, view: view)
        if let view, let a = augmentation, a.tissueContrast || a.shading > 0 {
            let side = sliceSize
            let onField = a.tissueContrast ? labels(labelSlice, side: side, view: view) : [UInt8](repeating: 0, count: side * side)
            AppearanceRandomization.apply(&field, labels: onField, side: side, seed: view.noiseSeed, shading: a.shading)
        }
        return field
    }
}

extension PreprocessingPlan {
    /// Where the training views of a labelled frame are centred: with localisation, the heart
    /// centre of its reference labels (as `Localization.center` finds it from a prediction);
    /// without, the slice centre (zero).
    func referenceHeartCenter(_ labels: LabelMap) -> SIMD2<Double> {
        guard localization != nil, labels.shape.nz > 0 else { return .zero }
        let s = labels.slice(0)
        return Localization.center(of: (0..<labels.shape.nz).map { labels.slice($0).pixels }, width: s.width, height: s.height, spacing: s.spacing) ?? .zero
    }
}

extension SliceData {
    /// Completes a training plan that asks for standardised embeddings but has no statistics
    /// yet: computes them over every training view, records them in `plan`, and standardises
    /// `train` and `validation` (built with the plan before, so raw). A plan that already has
    /// statistics (a model continued or refitted) was applied when the samples were built.
    public static func standardizeForTraining(train: inout [TrainingSample], validation: inout [TrainingSample], plan: inout PreprocessingPlan) {
        guard plan.standardizeEmbeddings, plan.embeddingStatistics == nil, !train.isEmpty else { return }
        let stats = ChannelStatistics.of(count: train.count) { train[$0].embedding }
        plan.embeddingStatistics = stats
        train = train.map { $0.standardized(by: stats) }
        validation = validation.map { $0.standardized(by: stats) }
    }
}

extension FrozenEncoder {
    /// The head's input for a windowed field: the encoder's embedding (through the cache when
    /// one is given), standardised when the plan has embedding statistics.
    public func embed(_ windowed: [Float], plan: PreprocessingPlan, cache: EmbeddingCache?) -> Tensor {
        let compute = { self.embed(plan.encoderInput(windowed)) }
        guard let cache else { return plan.headInput(compute()) }
        return plan.headInput(cache.embedding(key: EmbeddingCache.key(encoder: identity, plan: plan, pixels: windowed), compute: compute))
    }

    /// `embed(_:plan:cache:)` of several windowed fields, in input order, one field per core at
    /// a time (each run single-threaded inside): independent images keep both cores busy better
    /// than splitting every operation of one image between them (docs/PERFORMANCE.md, session 8).
    public func embedAll(_ fields: [[Float]], plan: PreprocessingPlan, cache: EmbeddingCache?) -> [Tensor] {
        Parallel.map(fields.count) { embed(fields[$0], plan: plan, cache: cache) }
    }

    /// Seeded random weights (no checkpoint): there is no pretrained mask decoder to keep.
    public var isRandom: Bool { source == nil }
}

public enum HeadSetupError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case gridNotDivisibleBy8(head: String, encoder: String, grid: Int)

    public var description: String {
        switch self {
        case .gridNotDivisibleBy8(let h, let e, let g):
            "the \(h) head pools its grid three times and needs a grid divisible by 8; encoder \(e) gives \(g) x \(g)"
        }
    }
    public var errorDescription: String? { description }
}

/// What `autosam fit`, the experiment and the service share when a head is trained from scratch.
public enum HeadSetup {
    /// The plan a head of this kind trains with on this encoder: `PreprocessingPlan.robust`,
    /// without embedding standardisation for an AutoSAM head that starts from a checkpoint's
    /// pretrained mask decoder (it expects the raw embedding), and with LiteMedSAM's own input
    /// scaling ([0, 1]) for a TinyViT encoder.
    /// `views` overrides the plan's augmented views per slice (each one encoder run per slice).
    public static func plan(for encoder: FrozenEncoder, head: HeadKind, views: Int? = nil, elasticMM: Double? = nil) -> PreprocessingPlan {
        var p = PreprocessingPlan.robust(encoderSize: encoder.config.imageSize, views: views, elasticMM: elasticMM)
        if head == .autosam && !encoder.isRandom { p.standardizeEmbeddings = false }
        if encoder.config.tinyViT != nil {
            // LiteMedSAM was trained on images min-max scaled to [0, 1] (no ImageNet mean and
            // std): the plan's window is 0...255, so the mean is 0 and the scale 255.
            p.pixelMean = [0, 0, 0]
            p.pixelStd = [255, 255, 255]
        }
        return p
    }

    /// Refuses a head kind that cannot run on this configuration's token grid (the context
    /// head pools it three times).
    public static func checkGrid(_ kind: HeadKind, config: SAMConfig) throws {
        if kind == .context, config.gridSize % 8 != 0 {
            throw HeadSetupError.gridNotDivisibleBy8(head: kind.rawValue, encoder: config.name, grid: config.gridSize)
        }
    }

    /// A fresh head: the AutoSAM head from the SAM model's mask decoder (`sam`: the
    /// checkpoint's tensors, or the random encoder's seeded decoder), the others seeded.
    public static func freshHead(_ kind: HeadKind, encoder: FrozenEncoder, sam: [String: Tensor]? = nil, classes: Int = 4, seed: UInt64) throws -> SegmentationHead {
        try checkGrid(kind, config: encoder.config)
        if kind == .autosam {
            return try AutoSAMHead(sam: try sam ?? encoder.samTensors(), config: encoder.config, classes: classes, seed: seed)
        }
        return try Heads.make(kind, inChannels: encoder.config.outChannels, classes: classes, seed: seed)
    }
}
