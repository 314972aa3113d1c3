import CardiacImaging
import Foundation
import NN
import Tensor

/// What is saved beside the head weights (`model.json`): everything inference needs to replay
/// training, and where the model came from.
public struct HeadMetadata: Codable, Sendable {
    public var kind: HeadKind
    public var classes: [String]
    public var inChannels: Int
    public var encoder: String
    public var encoderSize: String
    public var plan: PreprocessingPlan
    public var trainingPatients: [String]
    public var validationPatients: [String]
    public var validationDice: Double
    public var epochs: Int
    public var options: TrainingOptions
    public var created: String
    public var software: String
    /// The AutoSAM head's transformer heads and depth (nil for the CNN and linear heads).
    public var decoderHeads: Int?
    public var decoderDepth: Int?

    public init(
        kind: HeadKind, classes: [String], inChannels: Int, encoder: String, encoderSize: String, plan: PreprocessingPlan,
        trainingPatients: [String], validationPatients: [String], validationDice: Double, epochs: Int,
        options: TrainingOptions, created: String, software: String, decoderHeads: Int? = nil, decoderDepth: Int? = nil
    ) {
        self.kind = kind
        self.classes = classes
        self.inChannels = inChannels
        self.encoder = encoder
        self.encoderSize = encoderSize
        self.plan = plan
        self.trainingPatients = trainingPatients
        self.validationPatients = validationPatients
        self.validationDice = validationDice
        self.epochs = epochs
        self.options = options
        self.created = created
        self.software = software
        self.decoderHeads = decoderHeads
        self.decoderDepth = decoderDepth
    }
}

/// A trained head on disk: `<dir>/head.safetensors` and `<dir>/model.json`.
public enum HeadModel {
    public static func save(_ head: SegmentationHead, metadata: HeadMetadata, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var tensors = Dictionary(uniqueKeysWithValues: head.parameters.map { ($0.0, $0.1.value) })
        if let a = head as? AutoSAMHead { tensors[AutoSAMHead.gaussianKey] = a.gaussian }
        try AtomicFile.write(try SafeTensors.encode(tensors, metadata: ["format": "autosam-head"]), to: dir + "/head.safetensors")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(metadata), to: dir + "/model.json")
    }

    /// Loads a head, strictly: every parameter present with its shape, nothing extra.
    public static func load(_ dir: String) throws -> (SegmentationHead, HeadMetadata) {
        guard let json = FileManager.default.contents(atPath: dir + "/model.json") else {
            throw CheckpointError.unreadable(path: dir + "/model.json", reason: "no model metadata")
        }
        let meta = try JSONDecoder().decode(HeadMetadata.self, from: json)
        if let stats = meta.plan.embeddingStatistics, stats.mean.count != meta.inChannels {
            throw CheckpointError.notACheckpoint(
                path: dir + "/model.json", reason: "its plan has embedding statistics for \(stats.mean.count) channels, the head takes \(meta.inChannels)")
        }
        let saved = try SafeTensors.load(dir + "/head.safetensors").tensors
        let head: SegmentationHead
        if meta.kind == .autosam {
            head = try AutoSAMHead(saved: saved, classes: meta.classes.count, heads: meta.decoderHeads ?? 8, depth: meta.decoderDepth ?? 2)
        } else {
            head = try Heads.make(meta.kind, inChannels: meta.inChannels, classes: meta.classes.count, seed: 0)
        }
        let store = ParameterStore(saved)
        store.ignore(prefix: AutoSAMHead.gaussianKey)
        for (name, v) in head.parameters { v.value = try store.take(name, shape: v.value.shape) }
        try store.finish()
        return (head, meta)
    }
}

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

extension HeadMetadata {
    /// The `FrozenEncoder` source that rebuilds the head's encoder without a path: the seeded
    /// size of a random encoder, "litemedsam" for the fetched LiteMedSAM checkpoint (the
    /// segmenter still checks its SHA-256 against the head's); nil for a checkpoint that only a
    /// path names.
    public var encoderSource: String? {
        if encoder.hasPrefix("random ") { return encoderSize }
        if encoderSize == Weights.liteMedSAMName { return Weights.liteMedSAMName }
        return nil
    }
}
