import CardiacImaging
import Foundation
import Tensor
import SegmentAnything

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
