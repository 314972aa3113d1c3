import Foundation
import NN
import Tensor

/// Loading SAM weights from a checkpoint file (.pth as released, or .safetensors).
public enum SAMCheckpoint {
    /// Reads all tensors of a checkpoint file.
    public static func tensors(_ path: String) throws -> [String: Tensor] {
        if path.hasSuffix(".safetensors") { return try SafeTensors.load(path).tensors }
        return try TorchCheckpoint.load(path)
    }

    /// Infers the model sizes from the tensor shapes (the checkpoint carries no config), so
    /// that the official sizes and any custom size load through the same code.
    public static func inferConfig(_ t: [String: Tensor], name: String = "custom") throws -> SAMConfig {
        func shape(_ k: String) throws -> [Int] {
            guard let s = t[k]?.shape else { throw CheckpointError.missingKey(k) }
            return s
        }
        let patch = try shape("image_encoder.patch_embed.proj.weight")  // [E, 3, p, p]
        let pos = try shape("image_encoder.pos_embed")  // [1, g, g, E]
        let e = patch[0], p = patch[2], g = pos[1]
        var depth = 0
        while t["image_encoder.blocks.\(depth).norm1.weight"] != nil { depth += 1 }
        guard depth > 0 else { throw CheckpointError.missingKey("image_encoder.blocks.0.norm1.weight") }
        var global: [Int] = [], window = 0, headDim = 0
        let useRelPos = t["image_encoder.blocks.0.attn.rel_pos_h"] != nil
        if useRelPos {
            for i in 0..<depth {
                let r = try shape("image_encoder.blocks.\(i).attn.rel_pos_h")
                headDim = r[1]
                if r[0] == 2 * g - 1 { global.append(i) } else { window = (r[0] + 1) / 2 }
            }
        } else {
            throw CheckpointError.notACheckpoint(path: name, reason: "encoders without relative positions are not supported")
        }
        let mlp = try shape("image_encoder.blocks.0.mlp.lin1.weight")[0]
        let out = try shape("image_encoder.neck.0.weight")[0]
        var cfg = SAMConfig(
            name: name, imageSize: g * p, patchSize: p, embedDim: e, depth: depth, numHeads: e / headDim,
            mlpRatio: Double(mlp) / Double(e), windowSize: window, globalAttentionIndexes: global, useRelPos: useRelPos,
            outChannels: out, maskInChannels: 16, decoderDepth: 2, decoderMLPDim: 2048, decoderHeads: 8, multimaskOutputs: 3,
            iouHeadDepth: 3, iouHeadHiddenDim: 256)
        if let m = t["prompt_encoder.mask_downscaling.0.weight"]?.shape { cfg.maskInChannels = m[0] * 4 }
        var dd = 0
        while t["mask_decoder.transformer.layers.\(dd).norm1.weight"] != nil { dd += 1 }
        if dd > 0 {
            cfg.decoderDepth = dd
            cfg.decoderMLPDim = try shape("mask_decoder.transformer.layers.0.mlp.lin1.weight")[0]
        }
        if let mt = t["mask_decoder.mask_tokens.weight"]?.shape { cfg.multimaskOutputs = mt[0] - 1 }
        var ih = 0
        while t["mask_decoder.iou_prediction_head.layers.\(ih).weight"] != nil { ih += 1 }
        if ih > 0 {
            cfg.iouHeadDepth = ih
            cfg.iouHeadHiddenDim = try shape("mask_decoder.iou_prediction_head.layers.0.weight")[0]
        }
        if let official = [SAMConfig.vitB, .vitL, .vitH].first(where: { $0.embedDim == e && $0.depth == depth && $0.imageSize == g * p }) {
            cfg.name = official.name
            cfg.numHeads = official.numHeads
        }
        return cfg
    }
}
