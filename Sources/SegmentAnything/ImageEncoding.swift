import NN
import Tensor

/// A frozen image encoder: image [3, S, S] (already preprocessed and padded) -> embeddings
/// [outChannels, grid, grid]. SAM's ViT (vit_b/l/h, the seeded demo sizes) and TinyViT
/// (LiteMedSAM) both are one; the frozen encoder, the embedding cache, the benchmarks, the
/// experiment, the box baseline and the service take any of them.
public protocol ImageEncoding {
    var config: SAMConfig { get }
    /// The precision asked for and the one the products run in.
    var precisionChoice: PrecisionChoice { get }
    func encode(_ image: Tensor) -> Tensor
}

extension ImageEncoderViT: ImageEncoding {
    public func encode(_ image: Tensor) -> Tensor { self(image) }
}

public enum ImageEncoders {
    /// The encoder a configuration describes, its weights taken from `image_encoder.*`.
    public static func load(config: SAMConfig, weights: ParameterStore, precision: Precision = .fp32) throws -> any ImageEncoding {
        if config.tinyViT != nil { return try TinyViTEncoder(config: config, weights: weights, precision: precision) }
        return try ImageEncoderViT(config: config, weights: weights, precision: precision)
    }
}
