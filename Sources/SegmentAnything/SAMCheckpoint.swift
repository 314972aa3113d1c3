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
        if t["image_encoder.layers.0.blocks.0.conv1.c.weight"] != nil {
            return try withDecoderSizes(t, inferTinyViT(t, name: name))
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
        if let official = [SAMConfig.vitB, .vitL, .vitH].first(where: { $0.embedDim == e && $0.depth == depth && $0.imageSize == g * p }) {
            cfg.name = official.name
            cfg.numHeads = official.numHeads
        }
        return try withDecoderSizes(t, cfg)
    }

    /// The prompt encoder's and mask decoder's sizes, where the checkpoint holds them.
    static func withDecoderSizes(_ t: [String: Tensor], _ config: SAMConfig) throws -> SAMConfig {
        func shape(_ k: String) throws -> [Int] {
            guard let s = t[k]?.shape else { throw CheckpointError.missingKey(k) }
            return s
        }
        var cfg = config
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
        return cfg
    }

    /// A TinyViT encoder's sizes from its tensors: stage widths from the merges, depths by
    /// counting blocks, heads and windows from the attention-bias tables [heads, ws*ws]. The
    /// input side is not in the checkpoint: LiteMedSAM's 256 (`imageSize` may be changed after).
    static func inferTinyViT(_ t: [String: Tensor], name: String) throws -> SAMConfig {
        func shape(_ k: String) throws -> [Int] {
            guard let s = t["image_encoder." + k]?.shape else { throw CheckpointError.missingKey("image_encoder." + k) }
            return s
        }
        var dims = [try shape("patch_embed.seq.2.c.weight")[0]]
        for l in 0..<3 { dims.append(try shape("layers.\(l).downsample.conv1.c.weight")[0]) }
        var depths: [Int] = [], heads = [0], windows = [0]
        for l in 0..<4 {
            var n = 0
            let probe = l == 0 ? "conv1.c.weight" : "attn.qkv.weight"
            while t["image_encoder.layers.\(l).blocks.\(n).\(probe)"] != nil { n += 1 }
            guard n > 0 else { throw CheckpointError.missingKey("image_encoder.layers.\(l).blocks.0.\(probe)") }
            depths.append(n)
            if l > 0 {
                let b = try shape("layers.\(l).blocks.0.attn.attention_biases")
                let ws = Int(Double(b[1]).squareRoot().rounded())
                guard ws * ws == b[1], b[0] > 0, dims[l] % b[0] == 0 else {
                    throw CheckpointError.shapeMismatch(key: "image_encoder.layers.\(l).blocks.0.attn.attention_biases", expected: [b[0], ws * ws], found: b)
                }
                heads.append(b[0])
                windows.append(ws)
            }
        }
        let hidden = try shape("layers.0.blocks.0.conv1.c.weight")[0]
        let mlp = try shape("layers.1.blocks.0.mlp.fc1.weight")[0]
        let out = try shape("neck.0.weight")[0]
        let tiny = TinyViTConfig(
            embedDims: dims, depths: depths, numHeads: heads, windowSizes: windows, mlpRatio: Double(mlp) / Double(dims[1]),
            mbconvExpandRatio: Double(hidden) / Double(dims[0]))
        var cfg = SAMConfig.liteMedSAM
        cfg.name = tiny == .liteMedSAM && out == 256 ? "litemedsam" : name
        cfg.tinyViT = tiny
        cfg.embedDim = dims[3]
        cfg.depth = depths.reduce(0, +)
        cfg.numHeads = heads[3]
        cfg.windowSize = windows[3]
        cfg.outChannels = out
        return cfg
    }
}
