import Foundation
import NN
import SegmentAnything
import Tensor

/// The frozen SAM image encoder a head is trained on, with the identity that keys the
/// embedding cache and is recorded in model files.
public final class FrozenEncoder: @unchecked Sendable {
    public let config: SAMConfig
    /// "name sha256" of the checkpoint, or "random <size> seed <n>" for random weights.
    public let identity: String
    let encoder: ImageEncoderViT

    /// `source` is a checkpoint path, or a registered size name for seeded random weights
    /// (the embedded demo default: no download needed).
    public init(source: String, precision: Precision = .fp32) throws {
        if FileManager.default.fileExists(atPath: source) {
            let t = try SAMCheckpoint.tensors(source)
            config = try SAMCheckpoint.inferConfig(t)
            let id = try CheckpointIdentity.of(source)
            identity = "\(config.name) \(id.sha256)"
            encoder = try ImageEncoderViT(config: config, weights: ParameterStore(t), precision: precision)
        } else if let c = SAMConfig.named(source) {
            config = c
            identity = "random \(c.name) seed 1"
            encoder = try ImageEncoderViT(config: c, weights: RandomWeights.imageEncoder(c, seed: 1), precision: precision)
        } else {
            throw CheckpointError.unreadable(path: source, reason: "neither a checkpoint file nor a size name (\(SAMConfig.registry.keys.sorted().joined(separator: ", ")))")
        }
    }

    public func embed(_ input: Tensor) -> Tensor { encoder(input) }
}
