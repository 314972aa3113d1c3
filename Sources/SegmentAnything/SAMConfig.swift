/// Sizes of a Segment Anything model. The three official sizes differ only in the encoder's
/// width, depth, heads and global-attention blocks (segment-anything `build_sam.py`).
public struct SAMConfig: Codable, Equatable, Sendable {
    public var name: String
    // Image encoder
    public var imageSize: Int
    public var patchSize: Int
    public var embedDim: Int
    public var depth: Int
    public var numHeads: Int
    public var mlpRatio: Double
    public var windowSize: Int
    public var globalAttentionIndexes: [Int]
    public var useRelPos: Bool
    /// Encoder output channels = prompt embedding dim = mask decoder transformer dim.
    public var outChannels: Int
    // Prompt encoder and mask decoder
    public var maskInChannels: Int
    public var decoderDepth: Int
    public var decoderMLPDim: Int
    public var decoderHeads: Int
    public var multimaskOutputs: Int
    public var iouHeadDepth: Int
    public var iouHeadHiddenDim: Int
    /// Set for a TinyViT image encoder (MobileSAM, LiteMedSAM); nil for SAM's ViT. The ViT
    /// fields above then only give the input side (imageSize), the grid (imageSize / patchSize,
    /// patchSize 4) and the output channels.
    public var tinyViT: TinyViTConfig?

    public var gridSize: Int { imageSize / patchSize }
    public var headDim: Int { embedDim / numHeads }
    public var mlpDim: Int { Int(Double(embedDim) * mlpRatio) }

    static func official(_ name: String, embed: Int, depth: Int, heads: Int, global: [Int]) -> SAMConfig {
        SAMConfig(
            name: name, imageSize: 1024, patchSize: 16, embedDim: embed, depth: depth, numHeads: heads, mlpRatio: 4,
            windowSize: 14, globalAttentionIndexes: global, useRelPos: true, outChannels: 256, maskInChannels: 16,
            decoderDepth: 2, decoderMLPDim: 2048, decoderHeads: 8, multimaskOutputs: 3, iouHeadDepth: 3,
            iouHeadHiddenDim: 256)
    }

    public static let vitB = official("vit_b", embed: 768, depth: 12, heads: 12, global: [2, 5, 8, 11])
    public static let vitL = official("vit_l", embed: 1024, depth: 24, heads: 16, global: [5, 11, 17, 23])
    public static let vitH = official("vit_h", embed: 1280, depth: 32, heads: 16, global: [7, 15, 23, 31])

    /// A test size shaped like the parity fixture `tiny_a` (windows that need padding, one
    /// global block).
    public static let tiny = SAMConfig(
        name: "tiny", imageSize: 224, patchSize: 16, embedDim: 48, depth: 3, numHeads: 3, mlpRatio: 4, windowSize: 4,
        globalAttentionIndexes: [1], useRelPos: true, outChannels: 32, maskInChannels: 16, decoderDepth: 2,
        decoderMLPDim: 64, decoderHeads: 4, multimaskOutputs: 3, iouHeadDepth: 3, iouHeadHiddenDim: 32)

    /// A small size for demos on any CPU: 256-pixel input, 8-pixel patches, 32 x 32 x 128
    /// embeddings (an 8-pixel patch keeps every pixel's information in a random 192-wide
    /// projection, which a 16-pixel patch, 256 values into 192, cannot; 128 output channels
    /// make every head a quarter of its vit_b cost, so heads train in minutes on 2 cores).
    public static let demo = SAMConfig(
        name: "demo", imageSize: 256, patchSize: 8, embedDim: 192, depth: 4, numHeads: 3, mlpRatio: 4, windowSize: 8,
        globalAttentionIndexes: [1, 3], useRelPos: true, outChannels: 128, maskInChannels: 16, decoderDepth: 2,
        decoderMLPDim: 1024, decoderHeads: 8, multimaskOutputs: 3, iouHeadDepth: 3, iouHeadHiddenDim: 128)

    /// LiteMedSAM (MedSAM's distilled model): a TinyViT-5M encoder at 256 pixels, 64 x 64 x 256
    /// embeddings, SAM's prompt encoder and mask decoder.
    public static let liteMedSAM: SAMConfig = {
        var c = SAMConfig(
            name: "litemedsam", imageSize: 256, patchSize: 4, embedDim: 320, depth: 12, numHeads: 10, mlpRatio: 4,
            windowSize: 7, globalAttentionIndexes: [], useRelPos: false, outChannels: 256, maskInChannels: 16,
            decoderDepth: 2, decoderMLPDim: 2048, decoderHeads: 8, multimaskOutputs: 3, iouHeadDepth: 3, iouHeadHiddenDim: 256)
        c.tinyViT = .liteMedSAM
        return c
    }()

    /// The registry of named sizes (seeded random weights; a real encoder comes from its file).
    public static let registry: [String: SAMConfig] = [
        "vit_b": vitB, "vit_l": vitL, "vit_h": vitH, "tiny": tiny, "demo": demo,
    ]

    public static func named(_ name: String) -> SAMConfig? { registry[name] }
}
