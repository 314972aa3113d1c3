import Foundation
import Tensor

/// Appearance randomisation per tissue for training views (issue 20, item 9): what a scanner or
/// a sequence changes, drawn anew for every view, so that a head learns anatomy rather than one
/// generator's look. Labels are known for training slices, so the blood pools (RV and LV
/// cavities) and the myocardium can be given their own random mean intensities; the change is
/// blended through masks blurred by `blurPixels`, so that no edge is drawn where the image has
/// none (an edge the head could learn instead of the anatomy). Then a smooth multiplicative
/// shading (a coil's sensitivity) of up to +-`shading` in log amplitude.
enum AppearanceRandomization {
    /// Target means, as fractions of the 0...255 window.
    static let bloodRange: ClosedRange<Double> = 0.45...1.0
    static let myocardiumRange: ClosedRange<Double> = 0.05...0.55
    static let blurPixels = 1.5

    /// `field` [side * side] in 0...255 and its labels on the same grid (0 background, 1 RV,
    /// 2 myocardium, 3 LV); a pure function of the inputs and `seed`.
    static func apply(_ field: inout [Float], labels: [UInt8], side: Int, seed: UInt64, shading: Double) {
        precondition(field.count == side * side && labels.count == side * side)
        var g = SplitMix64(seed: seed ^ 0xA5A5_5A5A_C3C3_3C3C)
        func draw(_ r: ClosedRange<Double>) -> Double { r.lowerBound + g.unit() * (r.upperBound - r.lowerBound) }
        let blood = draw(bloodRange) * 255, myo = draw(myocardiumRange) * 255
        for (members, target) in [([UInt8(1), 3], blood), ([2], myo)] {
            var mask = labels.map { members.contains($0) ? Float(1) : 0 }
            var sum = 0.0, count = 0.0
            for i in field.indices where mask[i] > 0 { sum += Double(field[i]); count += 1 }
            guard count > 0 else { continue }
            let delta = Float(target - sum / count)
            gaussianBlur(&mask, side: side, sigma: blurPixels)
            for i in field.indices { field[i] += delta * mask[i] }
        }
        if shading > 0 {
            // exp of a random plane plus a random quadratic bowl over the field, scaled so its
            // largest magnitude is `shading` (log amplitude).
            let a = g.unit() * 2 - 1, b = g.unit() * 2 - 1, c = g.unit() * 2 - 1
            let amp = shading * g.unit()
            var logField = [Double](repeating: 0, count: side * side)
            var peak = 1e-12
            for y in 0..<side {
                for x in 0..<side {
                    let u = Double(x) / Double(side - 1) * 2 - 1, v = Double(y) / Double(side - 1) * 2 - 1
                    let l = a * u + b * v + c * (u * u + v * v - 0.66)
                    logField[y * side + x] = l
                    peak = max(peak, abs(l))
                }
            }
            for i in field.indices { field[i] *= Float(exp(amp * logField[i] / peak)) }
        }
        for i in field.indices { field[i] = min(max(field[i], 0), 255) }
    }

    /// Separable Gaussian blur of a [side * side] map (zero outside), in place.
    static func gaussianBlur(_ m: inout [Float], side: Int, sigma: Double) {
        let r = Int((3 * sigma).rounded(.up))
        let k = (-r...r).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let norm = k.reduce(0, +)
        let kernel = k.map { $0 / norm }
        // One pass along x (stride 1 within a row), then one along y (stride `side`).
        func pass(_ src: [Float], step: Int) -> [Float] {
            var out = [Float](repeating: 0, count: src.count)
            for y in 0..<side {
                for x in 0..<side {
                    let along = step == 1 ? x : y
                    var s: Float = 0
                    for (j, w) in kernel.enumerated() {
                        let p = along + j - r
                        if p >= 0 && p < side { s += w * src[y * side + x + (p - along) * step] }
                    }
                    out[y * side + x] = s
                }
            }
            return out
        }
        m = pass(pass(m, step: 1), step: side)
    }
}
