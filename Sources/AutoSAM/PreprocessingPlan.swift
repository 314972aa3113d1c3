import CardiacImaging
import Foundation
import Tensor

/// How a short-axis slice becomes the encoder's input, saved beside the head weights so that
/// inference replays training exactly (nnU-Net's habit).
public struct PreprocessingPlan: Codable, Equatable, Sendable {
    /// Slices are resized (bilinear; labels nearest) to sliceSize x sliceSize.
    public var sliceSize: Int
    /// Encoder input side (the checkpoint's image size).
    public var encoderSize: Int
    /// Intensity window: values are clipped to these percentiles of the slice, then scaled to
    /// 0...255 (the paper min-max normalises: percentiles 0 and 100).
    public var lowerPercentile: Double
    public var upperPercentile: Double
    /// SAM's pixel normalisation, applied to the 3 replicated channels.
    public var pixelMean: [Float]
    public var pixelStd: [Float]

    /// The paper's preprocessing: min-max, 256-pixel slices.
    public static func paper(encoderSize: Int) -> PreprocessingPlan {
        PreprocessingPlan(
            sliceSize: 256, encoderSize: encoderSize, lowerPercentile: 0, upperPercentile: 100,
            pixelMean: [123.675, 116.28, 103.53], pixelStd: [58.395, 57.12, 57.375])
    }

    /// Robust intensity window (0.5 / 99.5 percentiles) against bright outliers.
    public static func robust(encoderSize: Int) -> PreprocessingPlan {
        var p = paper(encoderSize: encoderSize)
        p.lowerPercentile = 0.5
        p.upperPercentile = 99.5
        return p
    }

    /// The slice resized and windowed to 0...255: [sliceSize, sliceSize].
    public func window(_ slice: Slice2D<Float>) -> [Float] {
        let resized = Resize.bilinear(
            Tensor(shape: [1, slice.height, slice.width], data: slice.pixels), height: sliceSize, width: sliceSize)
        let sorted = resized.data.sorted()
        func pct(_ q: Double) -> Float {
            let i = min(sorted.count - 1, max(0, Int((q / 100 * Double(sorted.count - 1)).rounded())))
            return sorted[i]
        }
        let lo = pct(lowerPercentile), hi = pct(upperPercentile)
        let span = max(hi - lo, 1e-6)
        return resized.data.map { min(max(($0 - lo) / span, 0), 1) * 255 }
    }

    /// Encoder input [3, encoderSize, encoderSize] of a windowed slice.
    public func encoderInput(_ windowed: [Float]) -> Tensor {
        let up = Resize.bilinear(Tensor(shape: [1, sliceSize, sliceSize], data: windowed), height: encoderSize, width: encoderSize)
        var out = [Float](repeating: 0, count: 3 * encoderSize * encoderSize)
        let n = encoderSize * encoderSize
        for c in 0..<3 { for i in 0..<n { out[c * n + i] = (up.data[i] - pixelMean[c]) / pixelStd[c] } }
        return Tensor(shape: [3, encoderSize, encoderSize], data: out)
    }

    /// Labels resized (nearest) to sliceSize x sliceSize.
    public func labels(_ slice: Slice2D<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: sliceSize * sliceSize)
        for y in 0..<sliceSize {
            let sy = min(slice.height - 1, Int((Double(y) + 0.5) * Double(slice.height) / Double(sliceSize)))
            for x in 0..<sliceSize {
                let sx = min(slice.width - 1, Int((Double(x) + 0.5) * Double(slice.width) / Double(sliceSize)))
                out[y * sliceSize + x] = slice[sx, sy]
            }
        }
        return out
    }
}
