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

/// SAM's neck, shared by both encoders: 1x1 conv (no bias), LayerNorm2d, 3x3 conv (padding 1,
/// no bias), LayerNorm2d (eps 1e-6), on [C, g, g].
struct Neck {
    var conv1: Tensor, norm1W: Tensor, norm1B: Tensor, conv2: Tensor, norm2W: Tensor, norm2B: Tensor
    static let eps: Float = 1e-6

    init(_ s: ParameterStore.Scope, in channels: Int, out o: Int) throws {
        conv1 = try s.take("neck.0.weight", shape: [o, channels, 1, 1])
        norm1W = try s.take("neck.1.weight", shape: [o])
        norm1B = try s.take("neck.1.bias", shape: [o])
        conv2 = try s.take("neck.2.weight", shape: [o, o, 3, 3])
        norm2W = try s.take("neck.3.weight", shape: [o])
        norm2B = try s.take("neck.3.bias", shape: [o])
    }

    func callAsFunction(_ chw: Tensor) -> Tensor {
        var y = Conv.conv2d(chw, weight: conv1, bias: nil)
        Ops.layerNorm2d(&y, weight: norm1W, bias: norm1B, eps: Self.eps)
        y = Conv.conv2d(y, weight: conv2, bias: nil, padding: 1)
        Ops.layerNorm2d(&y, weight: norm2W, bias: norm2B, eps: Self.eps)
        return y
    }
}

public enum ImageEncoders {
    /// The encoder a configuration describes, its weights taken from `image_encoder.*`.
    public static func load(config: SAMConfig, weights: ParameterStore, precision: Precision = .fp32) throws -> any ImageEncoding {
        if config.tinyViT != nil { return try TinyViTEncoder(config: config, weights: weights, precision: precision) }
        return try ImageEncoderViT(config: config, weights: weights, precision: precision)
    }
}
