import Foundation
import Testing

@testable import AutoSAM
@testable import Tensor

@Suite struct AppearanceRandomizationTests {
    /// A 64 x 64 field: background 40, a myocardial ring 70, a blood pool 200 inside it.
    func disc() -> ([Float], [UInt8]) {
        var f = [Float](repeating: 40, count: 64 * 64), l = [UInt8](repeating: 0, count: 64 * 64)
        for y in 0..<64 {
            for x in 0..<64 {
                let r = ((Double(x) - 32) * (Double(x) - 32) + (Double(y) - 32) * (Double(y) - 32)).squareRoot()
                if r < 10 { f[y * 64 + x] = 200; l[y * 64 + x] = 3 } else if r < 15 { f[y * 64 + x] = 70; l[y * 64 + x] = 2 }
            }
        }
        return (f, l)
    }

    @Test func tissuesGetNewContrastWithoutNewEdges() {
        let (original, labels) = disc()
        var means: Set<Int> = []
        for seed in UInt64(1)...6 {
            var f = original
            AppearanceRandomization.apply(&f, labels: labels, side: 64, seed: seed, shading: 0)
            // Deterministic.
            var again = original
            AppearanceRandomization.apply(&again, labels: labels, side: 64, seed: seed, shading: 0)
            #expect(f == again)
            // The blood pool's centre moved to the drawn level (inside 0.45...1.0 of the window),
            // the myocardium's middle to its own, the far background is untouched.
            let centre = f[32 * 64 + 32], ring = f[32 * 64 + 44]
            #expect(centre >= 0.4 * 255 && centre <= 255, "\(centre)")
            #expect(ring >= 0 && ring <= 0.6 * 255, "\(ring)")
            #expect(f[2 * 64 + 2] == 40)
            means.insert(Int(centre))
            // No step larger than the image had at the tissue boundaries: the change is
            // blended through blurred masks (the largest original step is 200 - 70 = 130).
            for y in 1..<63 {
                for x in 1..<63 where labels[y * 64 + x] == labels[y * 64 + x + 1] && labels[y * 64 + x] != 0 {
                    let change = abs((f[y * 64 + x + 1] - original[y * 64 + x + 1]) - (f[y * 64 + x] - original[y * 64 + x]))
                    #expect(change < 60, "a step of \(change) inside one tissue at \(x),\(y)")
                }
            }
        }
        #expect(means.count > 3, "views should differ: \(means)")
    }

    /// Where the labels have a boundary the image does not (a flat field), the change is a
    /// ramp, not a step: no neighbouring pixels differ by more than 0.4 of the largest jump
    /// between tissues' changes (a sharp mask puts the whole jump in one step; a 1.5-pixel
    /// blur about a quarter of it).
    @Test func aLabelBoundaryWithoutAnImageEdgeGetsNoStep() {
        let (_, labels) = disc()
        for seed in UInt64(1)...4 {
            var f = [Float](repeating: 100, count: 64 * 64)
            AppearanceRandomization.apply(&f, labels: labels, side: 64, seed: seed, shading: 0)
            let blood = f[32 * 64 + 32] - 100, myo = f[32 * 64 + 44] - 100
            let jump = max(abs(blood), abs(myo), abs(blood - myo))
            guard jump > 10 else { continue }
            var step: Float = 0
            for y in 0..<64 { for x in 0..<63 { step = max(step, abs(f[y * 64 + x + 1] - f[y * 64 + x])) } }
            #expect(step < 0.4 * jump, "a step of \(step) for a jump of \(jump)")
        }
    }

    @Test func shadingIsSmoothAndBounded() {
        let (original, labels) = disc()
        var f = original
        AppearanceRandomization.apply(&f, labels: [UInt8](repeating: 0, count: labels.count), side: 64, seed: 9, shading: 0.35)
        var widest: Float = 0
        for i in f.indices where original[i] == 40 {
            let ratio = f[i] / 40
            #expect(ratio >= exp(-0.35) - 1e-4 && ratio <= exp(0.35) + 1e-4, "\(ratio)")
            widest = max(widest, abs(ratio - 1))
        }
        #expect(widest > 0.02, "no shading was applied")
    }

    /// Off (the default), the plan's bytes are what they were before the option existed, so
    /// embedding-cache keys and saved plans do not change; on, it round-trips.
    @Test func planBytesUnchangedWhileOff() throws {
        let plain = PreprocessingPlan.robust(encoderSize: 256)
        let json = String(decoding: try JSONEncoder.sorted.encode(plain), as: UTF8.self)
        #expect(!json.contains("tissueContrast") && !json.contains("shading"))
        var on = plain
        on.augmentation?.tissueContrast = true
        on.augmentation?.shading = 0.3
        let back = try JSONDecoder().decode(PreprocessingPlan.self, from: try JSONEncoder.sorted.encode(on))
        #expect(back == on && back != plain)
    }
}
