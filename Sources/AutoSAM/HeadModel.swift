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
