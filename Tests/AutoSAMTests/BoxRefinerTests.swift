import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM

@Suite struct BoxRefinerTests {
    @Test func boxesComeFromTheLargestRegionOnly() {
        let side = 10
        var labels = [UInt8](repeating: 0, count: side * side)
        for y in 1...3 { for x in 2...4 { labels[y * side + x] = 1 } }
        labels[8 * side + 8] = 1  // a stray island far away
        labels[5 * side + 5] = 3
        let rv = BoxRefiner.box(labels, side: side) { $0 == 1 }
        #expect(rv.map { [$0.0, $0.1, $0.2, $0.3] } == [2, 1, 4, 3])
        let lv = BoxRefiner.box(labels, side: side) { $0 == 3 }
        #expect(lv.map { [$0.0, $0.1, $0.2, $0.3] } == [5, 5, 5, 5])
        #expect(BoxRefiner.box(labels, side: side) { $0 == 2 } == nil)
    }

    @Test func aRandomDecoderIsRefused() throws {
        #expect(throws: BoxRefiner.SetupError.randomDecoder("demo")) { try BoxRefiner(encoder: try FrozenEncoder(source: "demo")) }
    }

    /// The real LiteMedSAM decoder, prompted with boxes of a phantom's own labels, draws the RV
    /// and LV back close to them; a slice without heart stays empty. Runs where the weights are
    /// (CI fetches them and sets AUTOSAM_REQUIRE_WEIGHTS=1, which makes their absence a failure).
    @Test func theLiteMedSAMDecoderRedrawsTheStructuresOfTruthBoxes() throws {
        let encoder: FrozenEncoder
        do { encoder = try FrozenEncoder(source: Weights.liteMedSAMName) } catch is WeightsMissing {
            if ProcessInfo.processInfo.environment["AUTOSAM_REQUIRE_WEIGHTS"] == "1" { Issue.record("lite_medsam.pth missing: run scripts/fetch_weights.sh") }
            return
        }
        let dir = NSTemporaryDirectory() + "refine-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (image, truth) = try PhantomCases.frames(patient: 1, slices: 2, dir: dir)[0]
        let refiner = try BoxRefiner(encoder: encoder)
        let refined = try refiner.refine(image, labels: truth)
        for label: UInt8 in [1, 3] {
            let d = try SegmentationMetrics.dice(prediction: refined, reference: truth, label: label)
            #expect(d > 0.85, "label \(label): Dice \(d)")
        }
        let slice = try image.slice(0)
        #expect(refiner.refine(slice, labels: [UInt8](repeating: 0, count: slice.width * slice.height)).allSatisfy { $0 == 0 })
    }
}
