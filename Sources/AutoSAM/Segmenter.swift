import CardiacImaging
import Foundation
import NN
import Tensor

/// Segments volumes with a frozen encoder and a trained head.
public struct Segmenter {
    public let head: SegmentationHead
    public let metadata: HeadMetadata
    public let encoder: FrozenEncoder
    public let cache: EmbeddingCache?
    /// Inference views per slice (1...64; callers check user input); nil = the plan's
    /// `testTimeRotations`.
    public var testTimeRotations: Int?
    /// A second pass of a pretrained SAM decoder prompted with boxes of the head's labels
    /// (`BoxRefiner`); nil: the head's labels as they are.
    public var refiner: BoxRefiner?

    public init(head: SegmentationHead, metadata: HeadMetadata, encoder: FrozenEncoder, cache: EmbeddingCache? = nil) throws {
        guard encoder.identity == metadata.encoder else {
            throw CheckpointError.notACheckpoint(
                path: "model", reason: "the head was trained on encoder '\(metadata.encoder)' but '\(encoder.identity)' was given")
        }
        self.head = head
        self.metadata = metadata
        self.encoder = encoder
        self.cache = cache
    }

    /// Labels for one 3D frame, on exactly the frame's grid.
    public func segment(_ frame: Volume) throws -> LabelMap { try segmentLocated(frame).labels }

    /// What segmenting one frame gives: its labels, where the plan's localisation centred the
    /// field (mm from the slice centre; nil without localisation, or when the coarse pass found
    /// no heart and the field stayed at the slice centre), and how unsure the head was.
    public struct FrameResult {
        public var labels: LabelMap
        public var centerMM: SIMD2<Double>?
        public var uncertainty: VolumeUncertainty

        public init(labels: LabelMap, centerMM: SIMD2<Double>? = nil, uncertainty: VolumeUncertainty) {
            self.labels = labels
            self.centerMM = centerMM
            self.uncertainty = uncertainty
        }
    }

    /// Labels for one 3D frame, with where its field was centred and the head's uncertainty.
    public func segmentLocated(_ frame: Volume) throws -> FrameResult {
        let plan = metadata.plan
        let range = PreprocessingPlan.testTimeRotationsRange
        let rotations = min(max(testTimeRotations ?? plan.testTimeRotations, range.lowerBound), range.upperBound)
        var labels = [UInt8](repeating: 0, count: frame.shape.voxelsPerFrame)
        let plane = frame.shape.nx * frame.shape.ny
        let slices = try (0..<frame.shape.nz).map { try frame.slice($0) }
        let logits = { (window: [Float]) -> Tensor in
            let emb = encoder.embed(window, plan: plan, cache: cache)
            return Autograd.withoutGrad { head.forward(Variable(emb)) }.value
        }
        // Localisation: the coarse pass on a few middle slices, then the heart's centre.
        let located = plan.locateHeart(slices) { logits(plan.window($0, view: $1)) }
        let center = located ?? .zero
        // Slices one per core at a time (encoder and head single-threaded inside): better
        // throughput than splitting each slice's operations between the cores (PERFORMANCE.md).
        let perSlice = Parallel.map(slices.count) { k in
            let slice = slices[k]
            let views = plan.inferenceWindows(slice, rotations: rotations, centerMM: center).map(logits)
            var r = plan.labelsAndUncertainty(viewLogits: views, width: slice.width, height: slice.height, spacing: slice.spacing, centerMM: center)
            if let refiner { r.labels = refiner.refine(slice, labels: r.labels) }
            return r
        }
        for k in slices.indices { labels.replaceSubrange((k * plane)..<((k + 1) * plane), with: perSlice[k].labels) }
        return FrameResult(
            labels: LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: labels), centerMM: located,
            uncertainty: VolumeUncertainty(slices: perSlice.map(\.uncertainty)))
    }
}
