import CardiacImaging
import Foundation
import Tensor

/// One labelled short-axis slice, encoded: the embedding and the labels at the head's output
/// resolution.
public struct TrainingSample: Sendable {
    public var embedding: Tensor  // [C, g, g]
    public var labels: [Int]  // [4g * 4g]
    public var source: String
    /// Samples with the same slice are views of one slice (the plain one and its augmented
    /// views): an epoch trains on one view of each slice, drawn at random. nil: a sample of
    /// its own.
    public var slice: String?

    public init(embedding: Tensor, labels: [Int], source: String, slice: String? = nil) {
        self.embedding = embedding
        self.labels = labels
        self.source = source
        self.slice = slice
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
        var out: [TrainingSample] = []
        for k in 0..<image.shape.nz {
            let slice = try image.slice(k), labelSlice = labels.slice(k)
            let key = "\(name) slice \(k)"
            for v in 0...views {
                let view = v == 0 ? nil : plan.augmentation!.view(v, key: key)
                let windowed = plan.window(slice, view: view)
                let emb = encoder.embed(windowed, plan: plan, cache: cache)
                let y = plan.labels(labelSlice, side: side, view: view).map(Int.init)
                out.append(TrainingSample(embedding: emb, labels: y, source: v == 0 ? key : "\(key) view \(v)", slice: key))
            }
        }
        return out
    }
}

extension FrozenEncoder {
    /// The embedding of a windowed field, through the cache when one is given.
    public func embed(_ windowed: [Float], plan: PreprocessingPlan, cache: EmbeddingCache?) -> Tensor {
        let compute = { self.embed(plan.encoderInput(windowed)) }
        guard let cache else { return compute() }
        return cache.embedding(key: EmbeddingCache.key(encoder: identity, plan: plan, pixels: windowed), compute: compute)
    }
}
