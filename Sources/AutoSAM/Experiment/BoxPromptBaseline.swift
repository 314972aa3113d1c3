import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

/// Zero-shot SAM with one box prompt per class and slice, taken from the ground truth (the
/// paper's "zero-shot SAM, box prompt" row). The slice is encoded exactly as for the heads
/// (same plan, same embedding cache); for every class present in the reference slice, the
/// bounding box of its reference pixels goes through SAM's prompt encoder and mask decoder
/// (single-mask output, as SamPredictor with a box and multimask_output=False); the mask
/// logits are brought back to the slice grid with SAM's postprocessing. Where several class
/// masks claim a pixel (logit > 0), the class with the highest logit wins.
public struct BoxPromptBaseline {
    public let encoder: FrozenEncoder
    public let plan: PreprocessingPlan
    public let cache: EmbeddingCache?
    let prompts: PromptEncoder
    let decoder: MaskDecoder
    let imagePE: Tensor

    public init(encoder: FrozenEncoder, decoderWeights: [String: Tensor], plan: PreprocessingPlan, cache: EmbeddingCache?) throws {
        self.encoder = encoder
        self.plan = plan
        self.cache = cache
        let store = ParameterStore(decoderWeights)
        prompts = try PromptEncoder(config: encoder.config, weights: store)
        decoder = try MaskDecoder(config: encoder.config, weights: store)
        imagePE = prompts.densePositionalEncoding()
    }

    /// Bounding box (x0, y0, x1, y1), inclusive pixel indices, of `label` in a slice; nil if absent.
    static func box(_ slice: Slice2D<UInt8>, label: UInt8) -> (Int, Int, Int, Int)? {
        var x0 = Int.max, y0 = Int.max, x1 = -1, y1 = -1
        for y in 0..<slice.height {
            for x in 0..<slice.width where slice.pixels[y * slice.width + x] == label {
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            }
        }
        return x1 < 0 ? nil : (x0, y0, x1, y1)
    }

    /// Labels of a 3D frame on its own grid, prompted with boxes from `reference`.
    public func segment(_ frame: Volume, reference: LabelMap, labels: [UInt8] = [1, 2, 3]) throws -> LabelMap {
        let (nx, ny, s) = (frame.shape.nx, frame.shape.ny, plan.encoderSize)
        let plane = nx * ny
        var out = [UInt8](repeating: 0, count: frame.shape.voxelsPerFrame)
        for k in 0..<frame.shape.nz {
            let ref = reference.slice(k)
            let boxes = labels.compactMap { l in Self.box(ref, label: l).map { (l, $0) } }
            if boxes.isEmpty { continue }
            let windowed = plan.window(try frame.slice(k))
            let compute = { encoder.embed(plan.encoderInput(windowed)) }
            let emb = cache.map { $0.embedding(key: EmbeddingCache.key(encoder: encoder.identity, plan: plan, pixels: windowed), compute: compute) } ?? compute()
            var best = [Float](repeating: 0, count: plane)  // highest logit so far (> 0 to claim)
            for (label, b) in boxes {
                // Slice pixels -> the encoder's input frame: the slice is stretched to s x s.
                let sx = Float(s) / Float(nx), sy = Float(s) / Float(ny)
                let box = Tensor(shape: [4], data: [Float(b.0) * sx, Float(b.1) * sy, Float(b.2 + 1) * sx - 1, Float(b.3 + 1) * sy - 1])
                let (sparse, dense) = prompts(box: box)
                let masks = decoder(imageEmbedding: emb, imagePE: imagePE, sparse: sparse, dense: dense, multimaskOutput: false).masks
                let logits = Postprocess.masks(masks, imageSize: s, inputSize: (s, s), originalSize: (ny, nx))
                for i in 0..<plane where logits.data[i] > best[i] {
                    best[i] = logits.data[i]
                    out[k * plane + i] = label
                }
            }
        }
        return LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: out)
    }
}
