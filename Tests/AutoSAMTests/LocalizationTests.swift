import CardiacImaging
import NN
import Foundation
import Tensor
import Testing

@testable import AutoSAM

/// Heart localisation (`Localization`): the centre it finds, the coarse and fine fields it
/// places, the training views that teach both, and how it is saved.
@Suite struct LocalizationTests {
    let width = 90, height = 70
    let spacing = SIMD2<Double>(1.6, 1.2)

    /// A disc of radius `r` mm centred `c` mm from the slice centre.
    func disc(_ c: SIMD2<Double>, r: Double = 12) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width {
                let dx = (Double(x) + 0.5 - Double(width) / 2) * spacing.x - c.x
                let dy = (Double(y) + 0.5 - Double(height) / 2) * spacing.y - c.y
                if dx * dx + dy * dy < r * r { out[y * width + x] = 3 }
            }
        }
        return out
    }

    func everywhere(_ cls: Int, side: Int) -> Tensor {
        var t = Tensor(zeros: [4, side, side])
        for i in 0..<(side * side) { t.data[cls * side * side + i] = 5 }
        return t
    }

    func localizingPlan(fov: Double) -> PreprocessingPlan {
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        plan.fieldOfViewMM = fov
        plan.localization = Localization()
        return plan
    }

    @Test func centerIsTheMedianOfTheLabelledPixels() throws {
        let c = try #require(Localization.center(of: [disc([20, -9])], width: width, height: height, spacing: spacing))
        // Within half a pixel of the disc's centre on each axis.
        #expect(abs(c.x - 20) <= 0.8 && abs(c.y + 9) <= 0.6, "\(c)")
        // Two slices: a stray labelled pixel far away does not move the median.
        var stray = [UInt8](repeating: 0, count: width * height)
        stray[0] = 1
        let d = try #require(Localization.center(of: [disc([20, -9]), stray], width: width, height: height, spacing: spacing))
        #expect(abs(d.x - 20) <= 0.8 && abs(d.y + 9) <= 0.6, "\(d)")
        #expect(Localization.center(of: [[UInt8](repeating: 0, count: width * height)], width: width, height: height, spacing: spacing) == nil)
    }

    @Test func coarseSlicesAreSpreadOverTheMiddle() {
        let loc = Localization()
        #expect(loc.coarseSlices(count: 10) == [2, 5, 7])
        #expect(loc.coarseSlices(count: 12) == [3, 6, 9])
        #expect(loc.coarseSlices(count: 3) == [0, 1, 2])
        #expect(loc.coarseSlices(count: 1) == [0])
    }

    /// The fine field is a `fieldOfViewMM` square around the located centre (one view or
    /// several rotations of it), and the coarse field is `fieldScale` times as wide around the
    /// slice centre: "LV everywhere" from the head lands exactly on each.
    @Test func fieldsArePlacedWhereLocalisationSays() throws {
        let plan = localizingPlan(fov: 30)
        let side = plan.sliceSize
        let centre = SIMD2<Double>(20, -9)
        for rotations in [1, 4] {
            let views = (0..<rotations).map { _ in everywhere(3, side: side) }
            let back = plan.labelsOnSlice(viewLogits: views, width: width, height: height, spacing: spacing, centerMM: centre)
            let found = try #require(Localization.center(of: [back], width: width, height: height, spacing: spacing))
            #expect(abs(found.x - centre.x) <= 1.6 && abs(found.y - centre.y) <= 1.2, "\(rotations) views: \(found)")
            let count = back.filter { $0 == 3 }.count
            // One view: the 30 mm square, 18.75 x 25 pixels. Four quarter turns cover the same square.
            #expect(abs(Double(count) - 18.75 * 25) < 50, "\(rotations) views: \(count) pixels")
        }
        // The windows follow the same fields: the first inference window around the centre is
        // the plain window of a slice shifted by it.
        let coarse = plan.labelsOnSlice(coarseLogits: everywhere(3, side: side), width: width, height: height, spacing: spacing)
        let count = coarse.filter { $0 == 3 }.count
        #expect(abs(Double(count) - 37.5 * 50) < 120, "coarse field: \(count) pixels")
        let mid = try #require(Localization.center(of: [coarse], width: width, height: height, spacing: spacing))
        #expect(abs(mid.x) <= 0.8 && abs(mid.y) <= 0.6)
        // A plan without localisation has no coarse window.
        var plain = plan
        plain.localization = nil
        let image = Slice2D<Float>(width: width, height: height, pixels: disc(centre).map { Float($0) * 50 }, spacing: spacing)
        #expect(plain.coarseWindow(image) == nil && plan.coarseWindow(image) != nil)
        // The inference window centred on the disc sees it in the middle of the field.
        let w = plan.inferenceWindows(image, rotations: 1, centerMM: centre)[0]
        #expect(w[(side / 2) * side + side / 2] > 200 && w[0] < 10)
    }

    /// Training views: every `coarseViewEvery`-th one is coarse (about `fieldScale` times the
    /// field, shifted up to `coarseShiftMM` about the slice centre); the others lie around the
    /// frame's heart centre within the augmentation's shift. Without localisation the views
    /// are the augmentation's, unchanged.
    @Test func trainingViewsTeachBothFields() {
        let plan = localizingPlan(fov: 224)
        let a = plan.augmentation!, loc = plan.localization!
        let heart = SIMD2<Double>(-40, 25)
        let mid = (a.scaleRange[0] * a.scaleRange[1]).squareRoot()
        var coarse = 0
        for v in 1...32 {
            let view = plan.trainingView(v, key: "p frame 1 slice 3", centerMM: heart)
            if v % loc.coarseViewEvery == 0 {
                coarse += 1
                #expect(view.scale >= loc.fieldScale * a.scaleRange[0] / mid - 1e-9 && view.scale <= loc.fieldScale * a.scaleRange[1] / mid + 1e-9)
                #expect(abs(view.shiftMM.x) <= loc.coarseShiftMM && abs(view.shiftMM.y) <= loc.coarseShiftMM)
            } else {
                #expect(view.scale >= a.scaleRange[0] && view.scale <= a.scaleRange[1])
                #expect(abs(view.shiftMM.x - heart.x) <= a.shiftMM && abs(view.shiftMM.y - heart.y) <= a.shiftMM)
            }
        }
        #expect(coarse == 8)
        var plain = plan
        plain.localization = nil
        let v = plain.trainingView(5, key: "k", centerMM: heart), w = a.view(5, key: "k")
        #expect(v.scale == w.scale && v.shiftMM == w.shiftMM && v.rotation == w.rotation)
    }

    @Test func savedOnlyWhenOnAndChecked() throws {
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        let keys = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(plan)) as? [String: Any]).keys
        #expect(!keys.contains("localization"))
        var on = plan
        on.localization = Localization()
        #expect(try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(on)) == on)
        // It only chooses pixels: the embedding cache key of a field does not depend on it.
        #expect(EmbeddingCache.key(encoder: "e", plan: on, pixels: [1, 2]) == EmbeddingCache.key(encoder: "e", plan: plan, pixels: [1, 2]))
        // Refused: localisation without a physical field, and values out of range.
        on.fieldOfViewMM = nil
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(on)) }
        plan.localization = Localization()
        plan.localization!.fieldScale = 9
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(plan)) }
    }
}

/// A head that says "LV" everywhere, whatever it is shown.
final class EverywhereLV: SegmentationHead {
    let kind = HeadKind.linear
    let classes = 4
    var parameters: [(String, Variable)] { [] }
    func forward(_ embedding: Variable) -> Variable {
        var t = Tensor(zeros: [4, 8, 8])
        for i in 0..<64 { t.data[3 * 64 + i] = 5 }
        return Variable(t)
    }
}

extension LocalizationTests {
    /// The segmenter runs the coarse pass only when the plan localises, reports the centre it
    /// used, and places the fine field there: a head that labels everything finds the middle
    /// of the coarse field's overlap with the slice, and the fine 60 mm field lands around it.
    @Test func segmenterLocalisesWhenThePlanSays() throws {
        let enc = try FrozenEncoder(source: "tiny")
        var plan = PreprocessingPlan.robust(encoderSize: 224)
        plan.fieldOfViewMM = 60
        let meta = HeadMetadata(
            kind: .linear, classes: ["background", "RV", "Myo", "LV"], inChannels: enc.config.outChannels, encoder: enc.identity,
            encoderSize: "tiny", plan: plan, trainingPatients: [], validationPatients: [], validationDice: 0,
            epochs: 0, options: TrainingOptions(), created: "now", software: "test")
        let g = VolumeGeometry(spacing: SIMD3(1.5, 1.5, 8), origin: SIMD3(0, 0, 0), direction: [SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)])
        // 101 x 81 pixels (151.5 x 121.5 mm): the coarse field (120 mm) is cut by the slice's
        // left and right edges only, symmetrically.
        let shape = GridShape(101, 81, 5)
        let image = Volume(shape: shape, geometry: g, floats: (0..<shape.count).map { Float($0 % 89) })
        let plain = try Segmenter(head: EverywhereLV(), metadata: meta, encoder: enc).segmentLocated(image)
        #expect(plain.centerMM == nil)
        var localizing = meta
        localizing.plan.localization = Localization()
        let located = try Segmenter(head: EverywhereLV(), metadata: localizing, encoder: enc).segmentLocated(image)
        let c = try #require(located.centerMM)
        #expect(abs(c.x) < 0.01 && abs(c.y) < 0.01, "\(c)")
        // Both put LV in the same 60 mm square (40 x 40 pixels) around the slice centre.
        #expect(located.labels.labels == plain.labels.labels)
        let perSlice = located.labels.labels.prefix(101 * 81).filter { $0 == 3 }.count
        #expect(abs(perSlice - 40 * 40) <= 90, "\(perSlice)")
    }
}
