import Crypto
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
    let encoder: any ImageEncoding
    /// Patch-embedding bias spread of the seeded random encoders (see RandomWeights).
    static let patchBiasStd: Float = 0.5
    /// The checkpoint file, nil for seeded random weights.
    let source: String?

    /// What an encoder argument names: a checkpoint file, or a size of seeded random weights.
    public enum Source: Equatable, Sendable {
        /// `official`: the name "litemedsam", whose file must be the official checkpoint.
        case checkpoint(path: String, official: Bool)
        case random(SAMConfig)
    }

    /// Resolves an encoder argument. "litemedsam" is the checkpoint scripts/fetch_weights.sh
    /// fetched into `Weights.folder`; a registered size name (demo, vit_b, ...) always means
    /// seeded random weights, even where a file or folder of that name sits in the working
    /// directory (write ./demo for such a file); anything else must be a checkpoint file.
    public static func resolve(_ requested: String) throws -> Source {
        if requested == Weights.liteMedSAMName { return .checkpoint(path: try Weights.liteMedSAMPath(), official: true) }
        if let c = SAMConfig.named(requested) { return .random(c) }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: requested, isDirectory: &isFolder) else {
            throw CheckpointError.unreadable(path: requested, reason: "no such file, and not an encoder name (\(Weights.liteMedSAMName), \(SAMConfig.registry.keys.sorted().joined(separator: ", ")))")
        }
        if isFolder.boolValue {
            throw CheckpointError.unreadable(path: requested, reason: "a folder, not a checkpoint file (.pth or .safetensors)")
        }
        return .checkpoint(path: requested, official: false)
    }

    /// `source`: see `resolve`.
    public init(source requested: String, precision: Precision = .fp32) throws {
        switch try Self.resolve(requested) {
        case let .checkpoint(source, official):
            let id = try CheckpointIdentity.of(source)
            if official, id.sha256 != Weights.liteMedSAMSHA256 {
                throw CheckpointError.unreadable(path: source, reason: "SHA-256 \(id.sha256), not the official LiteMedSAM checkpoint's \(Weights.liteMedSAMSHA256): fetch it again with scripts/fetch_weights.sh")
            }
            let t = try SAMCheckpoint.tensors(source)
            config = try SAMCheckpoint.inferConfig(t)
            identity = "\(config.name) \(id.sha256)"
            encoder = try ImageEncoders.load(config: config, weights: ParameterStore(t), precision: precision)
            self.source = source
        case let .random(c):
            config = c
            // The size's shape is part of the identity: a changed size never reuses old
            // cache entries or accepts heads trained on the old one.
            let shape = (try? JSONEncoder.sorted.encode(c)).map { SHA256.hash(data: $0).prefix(4).map { String(format: "%02x", $0) }.joined() } ?? "?"
            identity = "random \(c.name) seed 1 bias \(Self.patchBiasStd) config \(shape)"
            encoder = try ImageEncoderViT(
                config: c, weights: RandomWeights.imageEncoder(c, seed: 1, patchBiasStd: Self.patchBiasStd), precision: precision)
            self.source = nil
        }
    }

    public func embed(_ input: Tensor) -> Tensor { encoder.encode(input) }

    /// The precision asked for and the one in effect (bf16 only where the CPU has it), with
    /// the line that says why they differ.
    public var precision: PrecisionChoice { encoder.precisionChoice }

    /// The SAM model's other weights (`prompt_encoder.*`, `mask_decoder.*`) for the AutoSAM
    /// head and the box-prompt baseline: the checkpoint's own, or for a random encoder a
    /// seeded random (PyTorch-default) initialisation.
    public func samTensors() throws -> [String: Tensor] {
        if let source { return try SAMCheckpoint.tensors(source) }
        return RandomWeights.promptEncoderAndMaskDecoder(config, seed: 1)
    }
}

extension JSONEncoder {
    /// An encoder with stable key order, for hashing.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return e
    }
}
