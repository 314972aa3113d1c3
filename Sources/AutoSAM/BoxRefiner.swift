import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

/// A second pass that hands a head's labels to a pretrained SAM model as box prompts (a
/// research option of `autosam evaluate`, docs/EXPERIMENT.md session 16): on each slice, the
/// boxes of the largest regions of the head's RV and LV cavity, each grown by `marginPixels`,
/// go through the checkpoint's own prompt encoder and mask decoder (single mask, as
/// SamPredictor with a box) over a field of `fieldOfViewMM` centred on the head's heart. The
/// masks replace the head's RV and LV; the myocardium is the head's epicardium (myocardium
/// with LV) outside the refined LV (a box around the epicardium gives the blood pool, not the
/// muscle). Where several claim a pixel the highest logit wins, where none does it is
/// background. The head decides where and what; the pretrained decoder,
/// trained on far more images than any head here, draws the boundaries. Slices where the head
/// labels no heart stay empty. Needs a real checkpoint: a random decoder does not turn a box
/// into a mask.
public struct BoxRefiner: Sendable {
    public let encoder: FrozenEncoder
    public let plan: PreprocessingPlan
    public let marginPixels: Int
    let decoder: BoxPromptDecoder

    public enum SetupError: Error, Equatable, LocalizedError {
        case randomDecoder(String)
        case badSetting(String)
        public var errorDescription: String? {
            switch self {
            case .randomDecoder(let e): "the box refinement needs a pretrained SAM checkpoint (litemedsam or a file); '\(e)' has random weights"
            case .badSetting(let s): s
            }
        }
    }

    public init(encoder: FrozenEncoder, fieldOfViewMM: Double = 224, marginPixels: Int = 3) throws {
        guard !encoder.isRandom else { throw SetupError.randomDecoder(encoder.config.name) }
        guard fieldOfViewMM.isFinite, fieldOfViewMM > 0 else { throw SetupError.badSetting("the refining field of view must be a positive number of mm, not \(fieldOfViewMM)") }
        guard (0...64).contains(marginPixels) else { throw SetupError.badSetting("the refining boxes' margin must be 0...64 pixels, not \(marginPixels)") }
        self.encoder = encoder
        var p = HeadSetup.plan(for: encoder, head: .autosam)
        p.fieldOfViewMM = fieldOfViewMM
        p.augmentation = nil
        plan = p
        self.marginPixels = marginPixels
        decoder = try BoxPromptDecoder(config: encoder.config, sam: try encoder.samTensors())
    }

    /// The refined labels of one slice (row-major on the slice's grid) from the head's.
    public func refine(_ slice: Slice2D<Float>, labels: [UInt8]) -> [UInt8] {
        precondition(labels.count == slice.width * slice.height)
        guard let center = Localization.center(of: [labels], width: slice.width, height: slice.height, spacing: slice.spacing)
        else { return labels }
        let view = plan.inferenceView(0, of: 1, centerMM: center)
        let side = plan.encoderSize
        let inField = plan.labels(Slice2D(width: slice.width, height: slice.height, pixels: labels, spacing: slice.spacing), side: side, view: view)
        let rv = Self.box(inField, side: side) { $0 == 1 }
        let lv = Self.box(inField, side: side) { $0 == 3 }
        if rv == nil && lv == nil { return labels }
        let emb = encoder.embed(plan.window(slice, view: view), plan: plan, cache: nil)
        func mask(_ b: (Int, Int, Int, Int)) -> [Float] {
            let m = marginPixels
            return decoder.mask(emb, box: (max(0, b.0 - m), max(0, b.1 - m), min(side - 1, b.2 + m), min(side - 1, b.3 + m))).data
        }
        let n = side * side
        var logits = [Float](repeating: -1e9, count: 4 * n)
        for i in 0..<n { logits[i] = 0 }
        if let rv { logits.replaceSubrange(n..<(2 * n), with: mask(rv)) }
        let lvMask = lv.map(mask)
        if let lvMask { logits.replaceSubrange((3 * n)..<(4 * n), with: lvMask) }
        // The myocardium: inside the head's epicardium, outside the refined LV.
        for i in 0..<n where inField[i] == 2 || inField[i] == 3 { logits[2 * n + i] = -(lvMask?[i] ?? -1) }
        return plan.labelsOnSlice(viewLogits: [Tensor(shape: [4, side, side], data: logits)], width: slice.width, height: slice.height,
                                  spacing: slice.spacing, centerMM: center)
    }

    /// `refine(_:labels:)` on every slice of a frame (one slice per core at a time).
    public func refine(_ frame: Volume, labels: LabelMap) throws -> LabelMap {
        let slices = try (0..<frame.shape.nz).map { try frame.slice($0) }
        let refined = Parallel.map(slices.count) { refine(slices[$0], labels: labels.slice($0).pixels) }
        return LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: refined.flatMap { $0 })
    }

    /// Bounding box (x0, y0, x1, y1), inclusive pixel indices, of the largest 4-connected
    /// region of the pixels where `keep` holds (stray islands of a head's labels would
    /// otherwise stretch the box); nil if there are none.
    static func box(_ labels: [UInt8], side: Int, where keep: (UInt8) -> Bool) -> (Int, Int, Int, Int)? {
        var seen = [Bool](repeating: false, count: labels.count)
        var best: (count: Int, box: (Int, Int, Int, Int))?
        var stack: [Int] = []
        for start in labels.indices where !seen[start] && keep(labels[start]) {
            seen[start] = true
            stack.append(start)
            var count = 0, x0 = Int.max, y0 = Int.max, x1 = -1, y1 = -1
            while let i = stack.popLast() {
                count += 1
                let x = i % side, y = i / side
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && nx < side && ny >= 0 && ny < side {
                    let j = ny * side + nx
                    if !seen[j] && keep(labels[j]) { seen[j] = true; stack.append(j) }
                }
            }
            if count > best?.count ?? 0 { best = (count, (x0, y0, x1, y1)) }
        }
        return best?.box
    }
}
