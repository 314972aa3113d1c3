import Foundation
import SegmentAnything
import Tensor

public enum HeadSetupError: Error, Equatable, CustomStringConvertible, LocalizedError {
    case gridNotDivisibleBy8(head: String, encoder: String, grid: Int)

    public var description: String {
        switch self {
        case .gridNotDivisibleBy8(let h, let e, let g):
            "the \(h) head pools its grid three times and needs a grid divisible by 8; encoder \(e) gives \(g) x \(g)"
        }
    }
    public var errorDescription: String? { description }
}

/// What `autosam fit`, the experiment and the service share when a head is trained from scratch.
public enum HeadSetup {
    /// The plan a head of this kind trains with on this encoder: `PreprocessingPlan.robust`,
    /// without embedding standardisation for an AutoSAM head that starts from a checkpoint's
    /// pretrained mask decoder (it expects the raw embedding), and with LiteMedSAM's own input
    /// scaling ([0, 1]) for a TinyViT encoder.
    /// `views` overrides the plan's augmented views per slice (each one encoder run per slice).
    public static func plan(for encoder: FrozenEncoder, head: HeadKind, views: Int? = nil, elasticMM: Double? = nil) -> PreprocessingPlan {
        var p = PreprocessingPlan.robust(encoderSize: encoder.config.imageSize, views: views, elasticMM: elasticMM)
        if head == .autosam && !encoder.isRandom { p.standardizeEmbeddings = false }
        if encoder.config.tinyViT != nil {
            // LiteMedSAM was trained on images min-max scaled to [0, 1] (no ImageNet mean and
            // std): the plan's window is 0...255, so the mean is 0 and the scale 255.
            p.pixelMean = [0, 0, 0]
            p.pixelStd = [255, 255, 255]
        }
        return p
    }

    /// Refuses a head kind that cannot run on this configuration's token grid (the context
    /// head pools it three times).
    public static func checkGrid(_ kind: HeadKind, config: SAMConfig) throws {
        if kind == .context, config.gridSize % 8 != 0 {
            throw HeadSetupError.gridNotDivisibleBy8(head: kind.rawValue, encoder: config.name, grid: config.gridSize)
        }
    }

    /// A fresh head: the AutoSAM head from the SAM model's mask decoder (`sam`: the
    /// checkpoint's tensors, or the random encoder's seeded decoder), the others seeded.
    public static func freshHead(_ kind: HeadKind, encoder: FrozenEncoder, sam: [String: Tensor]? = nil, classes: Int = 4, seed: UInt64) throws -> SegmentationHead {
        try checkGrid(kind, config: encoder.config)
        if kind == .autosam {
            return try AutoSAMHead(sam: try sam ?? encoder.samTensors(), config: encoder.config, classes: classes, seed: seed)
        }
        return try Heads.make(kind, inChannels: encoder.config.outChannels, classes: classes, seed: seed)
    }
}
