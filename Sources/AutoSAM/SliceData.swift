import CardiacImaging
import Foundation
import Tensor

/// One labelled short-axis slice, encoded: the embedding and the labels at the head's output
/// resolution.
public struct TrainingSample: Sendable {
    public var embedding: Tensor  // [C, g, g]
    public var labels: [Int]  // [4g * 4g]
    public var source: String

    public init(embedding: Tensor, labels: [Int], source: String) {
        self.embedding = embedding
        self.labels = labels
        self.source = source
    }
}

public enum SliceData {
    /// Labels of a slice at the head's output side (nearest).
    static func labels(_ slice: Slice2D<UInt8>, side: Int, plan: PreprocessingPlan) -> [Int] {
        var p = plan
        p.sliceSize = side
        return p.labels(slice).map(Int.init)
    }

    /// Encodes every slice of the ED and ES frames of the given patients (through the cache).
    public static func samples(
        patients: [ACDCPatient], plan: PreprocessingPlan, encoder: FrozenEncoder, cache: EmbeddingCache?,
        maxClass: UInt8 = 3, progress: ((String) -> Void)? = nil
    ) throws -> [TrainingSample] {
        var out: [TrainingSample] = []
        let side = 4 * encoder.config.gridSize
        for p in patients {
            for frame in Set([p.info.ed, p.info.es]).sorted() {
                let (image, labels) = try p.labelledFrame(frame)
                try labels.validate(maxClass: maxClass)
                for k in 0..<image.shape.nz {
                    let windowed = plan.window(try image.slice(k))
                    let compute = { encoder.embed(plan.encoderInput(windowed)) }
                    let emb = cache.map { $0.embedding(key: EmbeddingCache.key(encoder: encoder.identity, plan: plan, pixels: windowed), compute: compute) } ?? compute()
                    out.append(TrainingSample(embedding: emb, labels: Self.labels(labels.slice(k), side: side, plan: plan), source: "\(p.id) frame \(frame) slice \(k)"))
                }
                progress?("\(p.id) frame \(frame): \(image.shape.nz) slices encoded")
            }
        }
        return out
    }
}
