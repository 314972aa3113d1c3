import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

/// Zero-shot SAM with one box prompt per class and slice, taken from the ground truth (the
/// paper's "zero-shot SAM, box prompt" row). The slice is encoded exactly as for the heads
/// (same plan and field, same embedding cache). For every class present in the reference
/// slice, the bounding box of its reference pixels (in the encoder's input frame) goes through
/// SAM's prompt encoder and mask decoder (single-mask output, as SamPredictor with a box and
/// multimask_output=False). The class mask logits go back onto the slice grid through the
/// plan like the heads' logits; where several masks claim a pixel (logit > 0), the class with
/// the highest logit wins, and where none does the pixel is background.
public struct BoxPromptBaseline {
    public let encoder: FrozenEncoder
    public let plan: PreprocessingPlan
    public let cache: EmbeddingCache?
    let decoder: BoxPromptDecoder

    /// `sam`: the prompt encoder and mask decoder tensors (`FrozenEncoder.samTensors()`).
    public init(encoder: FrozenEncoder, sam: [String: Tensor], plan: PreprocessingPlan, cache: EmbeddingCache?) throws {
        self.encoder = encoder
        self.plan = plan
        self.cache = cache
        decoder = try BoxPromptDecoder(config: encoder.config, sam: sam)
    }

    /// Bounding box (x0, y0, x1, y1), inclusive pixel indices, of `label` in a row-major
    /// side x side label image; nil if absent.
    static func box(_ labels: [UInt8], side: Int, label: UInt8) -> (Int, Int, Int, Int)? {
        var x0 = Int.max, y0 = Int.max, x1 = -1, y1 = -1
        for y in 0..<side {
            for x in 0..<side where labels[y * side + x] == label {
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            }
        }
        return x1 < 0 ? nil : (x0, y0, x1, y1)
    }

    /// Labels of a 3D frame on its own grid, prompted with boxes from `reference`.
    public func segment(_ frame: Volume, reference: LabelMap, classes: Int = 4) throws -> LabelMap {
        let s = plan.encoderSize
        let plane = frame.shape.nx * frame.shape.ny
        var out = [UInt8](repeating: 0, count: frame.shape.voxelsPerFrame)
        for k in 0..<frame.shape.nz {
            // The reference in the encoder's input frame (the plan's field at the encoder's size).
            let ref = plan.labels(reference.slice(k), side: s)
            let boxes = (1..<classes).compactMap { c in Self.box(ref, side: s, label: UInt8(c)).map { (c, $0) } }
            if boxes.isEmpty { continue }
            let slice = try frame.slice(k)
            let emb = encoder.embed(plan.window(slice), plan: plan, cache: cache)
            // Logits over the field: background 0, unprompted classes never win.
            var logits: Tensor?
            for (c, b) in boxes {
                let mask = decoder.mask(emb, box: b)
                if logits == nil { logits = Tensor(repeating: -1e9, shape: [classes, mask.shape[1], mask.shape[2]]) }
                let n = mask.shape[1] * mask.shape[2]
                logits!.data.replaceSubrange(0..<n, with: [Float](repeating: 0, count: n))
                logits!.data.replaceSubrange((c * n)..<((c + 1) * n), with: mask.data)
            }
            out.replaceSubrange((k * plane)..<((k + 1) * plane),
                                with: plan.labelsOnSlice(logits: logits!, width: slice.width, height: slice.height, spacing: slice.spacing))
        }
        return LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: out)
    }
}
