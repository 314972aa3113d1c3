import CardiacImaging
import Foundation
import Tensor
import Testing

@testable import AutoSAM

@Suite struct PreprocessingTests {
    /// A non-square, anisotropic label slice: an ellipse of class 3 in a ring of class 2, a
    /// blob of class 1 to the side.
    func labelSlice(width: Int = 90, height: Int = 70, spacing: SIMD2<Double> = [1.6, 1.2]) -> Slice2D<UInt8> {
        var s = Slice2D<UInt8>(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height), spacing: spacing)
        for y in 0..<height {
            for x in 0..<width {
                let dx = (Double(x) + 0.5 - 40) * spacing.x, dy = (Double(y) + 0.5 - 36) * spacing.y
                let r = (dx * dx + dy * dy).squareRoot()
                if r < 14 { s[x, y] = 3 } else if r < 21 { s[x, y] = 2 } else if abs(dx - 32) < 9, abs(dy) < 14 { s[x, y] = 1 }
            }
        }
        return s
    }

    func oneHot(_ labels: [UInt8], side: Int) -> Tensor {
        var t = Tensor(zeros: [4, side, side])
        for (i, l) in labels.enumerated() { t.data[Int(l) * side * side + i] = 1 }
        return t
    }

    func dice(_ a: [UInt8], _ b: [UInt8], _ c: UInt8) -> Double {
        SegmentationMetrics.dice(a.map { $0 == c }, b.map { $0 == c })
    }

    /// Labels sampled into the field and mapped back land where they came from, for the whole
    /// slice (the paper) and for a physical field of view (ours).
    @Test(arguments: [nil, 130.0])
    func fieldRoundTripKeepsTheLabelsInPlace(fov: Double?) {
        var plan = PreprocessingPlan.paper(encoderSize: 256)
        plan.fieldOfViewMM = fov
        let s = labelSlice()
        let side = 256
        let field = plan.labels(s, side: side)
        let back = plan.labelsOnSlice(logits: oneHot(field, side: side), width: s.width, height: s.height, spacing: s.spacing)
        for c: UInt8 in 1...3 { #expect(dice(back, s.pixels, c) > 0.97, "class \(c): \(dice(back, s.pixels, c))") }
    }

    /// Outside a physical field of view everything is background, whatever the head says.
    @Test func outsideTheFieldIsBackground() {
        var plan = PreprocessingPlan.paper(encoderSize: 256)
        plan.fieldOfViewMM = 40  // 25 x 33 pixels of a 1.6 x 1.2 mm slice
        let s = labelSlice()
        var logits = Tensor(zeros: [4, 64, 64])
        for i in 0..<(64 * 64) { logits.data[3 * 64 * 64 + i] = 5 }  // "LV" everywhere
        let back = plan.labelsOnSlice(logits: logits, width: s.width, height: s.height, spacing: s.spacing)
        #expect(back[0] == 0 && back[s.width * s.height - 1] == 0)
        #expect(back[35 * s.width + 45] == 3)  // the slice centre is inside
        let inside = back.filter { $0 == 3 }.count
        // The field covers 40 / 1.6 = 25 by 40 / 1.2 = 33.3 pixels.
        #expect(abs(Double(inside) - 25 * 33.3) < 60, "\(inside)")
    }

    /// A plan with a 120 mm field and the full intensity range, augmentation with geometry
    /// only, and `labelSlice()` as an image whose intensity encodes the class.
    func geometryOnlySetup() -> (PreprocessingPlan, Augmentation, Slice2D<UInt8>, Slice2D<Float>) {
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        plan.fieldOfViewMM = 120
        plan.lowerPercentile = 0
        plan.upperPercentile = 100
        var aug = Augmentation()
        aug.brightness = 0
        aug.gammaRange = [1, 1]
        aug.noise = 0
        let s = labelSlice()
        let image = Slice2D<Float>(width: s.width, height: s.height, pixels: s.pixels.map { Float($0) * 100 }, spacing: s.spacing)
        return (plan, aug, s, image)
    }

    /// The share of a view's pixels where the class read from the image agrees with the labels
    /// sampled through the same field, and those labels.
    func agreement(_ plan: PreprocessingPlan, _ view: AugmentedView, _ s: Slice2D<UInt8>, _ image: Slice2D<Float>) -> (Double, [UInt8]) {
        let img = plan.window(image, view: view), lab = plan.labels(s, side: plan.sliceSize, view: view)
        // Window maps 0...300 to 0...255: class = round(value / 85).
        let fromImage = img.map { UInt8(min(3, max(0, Int(($0 / 85).rounded())))) }
        return (Double(zip(fromImage, lab).filter { $0 == $1 }.count) / Double(lab.count), lab)
    }

    /// An augmented view moves image and labels together: an image whose intensity encodes
    /// the class, seen through a rotated, scaled and shifted field, still agrees with the labels
    /// sampled through the same field.
    @Test func augmentedImageAndLabelsStayAligned() {
        var (plan, aug, s, image) = geometryOnlySetup()
        aug.mirror = true
        plan.augmentation = aug
        var moved = 0
        for v in 1...6 {
            let (agree, lab) = agreement(plan, aug.view(v, key: "test slice"), s, image)
            #expect(agree > 0.98, "view \(v): \(agree)")
            if lab != plan.labels(s, side: plan.sliceSize) { moved += 1 }
        }
        #expect(moved == 6)  // every view really is transformed
    }

    /// Elastic deformation warps image and labels together, and really deforms them (not
    /// only the affine part): the same alignment check with the warp on, and the warped labels
    /// differ from the unwarped view's.
    @Test func elasticViewsKeepImageAndLabelsAligned() {
        var (plan, aug, s, image) = geometryOnlySetup()
        aug.elasticMM = 4
        plan.augmentation = aug
        var flat = aug
        flat.elasticMM = 0
        for v in 1...6 {
            let view = aug.view(v, key: "test slice"), plain = flat.view(v, key: "test slice")
            #expect(view.warp != nil && plain.warp == nil)
            // The warp is drawn last: every other parameter of the view is unchanged by it.
            #expect(view.rotation == plain.rotation && view.scale == plain.scale && view.shiftMM == plain.shiftMM
                    && view.noiseSeed == plain.noiseSeed)
            let (agree, lab) = agreement(plan, view, s, image)
            #expect(agree > 0.98, "view \(v): \(agree)")
            let unwarped = plan.labels(s, side: plan.sliceSize, view: plain)
            let changed = zip(lab, unwarped).filter { $0 != $1 }.count
            #expect(changed > 50, "view \(v): the warp moved only \(changed) label pixels")
        }
    }

    /// The displacement has the asked-for spread, and at the strongest allowed setting the
    /// warp does not fold (its Jacobian determinant stays positive) on a 200 mm square.
    @Test func elasticWarpSpreadAndNoFolding() {
        var aug = Augmentation()
        aug.elasticMM = 2
        var sum = 0.0, n = 0
        for v in 1...200 {
            let w = aug.view(v, key: "k").warp!
            for p in [SIMD2<Double>(0, 0), SIMD2(37, -12), SIMD2(-50, 41)] {
                let d = w.displacement(p)
                sum += d.x * d.x + d.y * d.y
                n += 2
            }
        }
        let std = (sum / Double(n)).squareRoot()
        #expect(std > 1.5 && std < 2.4, "displacement std \(std) mm for 2 mm asked")
        aug.elasticMM = Augmentation.elasticRange.upperBound
        var worst = Double.infinity
        for v in 1...100 {
            let w = aug.view(v, key: "k").warp!
            for y in stride(from: -100.0, through: 100, by: 10) {
                for x in stride(from: -100.0, through: 100, by: 10) {
                    let h = 0.01, p = SIMD2(x, y)
                    let dx = (w.displacement(p + SIMD2(h, 0)) - w.displacement(p - SIMD2(h, 0))) / (2 * h)
                    let dy = (w.displacement(p + SIMD2(0, h)) - w.displacement(p - SIMD2(0, h))) / (2 * h)
                    worst = min(worst, (1 + dx.x) * (1 + dy.y) - dy.x * dx.y)
                }
            }
        }
        #expect(worst > 0, "the warp folds: Jacobian determinant \(worst)")
    }

    /// Plans saved before elastic deformation existed load with it off; a bad one is refused.
    @Test func augmentationWithoutElasticKeysLoads() throws {
        let old = #"{"views":16,"rotationDegrees":180,"scaleRange":[0.7,1.4],"shiftMM":20,"brightness":0.1,"gammaRange":[0.7,1.5],"noise":0.03,"mirror":false,"seed":0}"#
        let a = try JSONDecoder().decode(Augmentation.self, from: Data(old.utf8))
        #expect(a.elasticMM == 0 && a.views == 16 && a.view(3, key: "x").warp == nil)
        var b = Augmentation()
        b.elasticMM = 5
        #expect(try JSONDecoder().decode(Augmentation.self, from: JSONEncoder().encode(b)) == b)
        let bad = old.replacingOccurrences(of: #""seed":0"#, with: #""seed":0,"elasticMM":-1"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Augmentation.self, from: Data(bad.utf8)) }
    }

    @Test func viewsAreReproducibleAndDistinct() {
        let a = Augmentation()
        let v1 = a.view(1, key: "p1 slice 3"), v1b = a.view(1, key: "p1 slice 3"), v2 = a.view(2, key: "p1 slice 3")
        #expect(v1.rotation == v1b.rotation && v1.scale == v1b.scale && v1.gamma == v1b.gamma)
        #expect(v1.rotation != v2.rotation)
        let r = a.rotationDegrees * .pi / 180
        for i in 1...20 {
            let v = a.view(i, key: "k")
            #expect(abs(v.rotation) <= r && v.scale >= a.scaleRange[0] && v.scale <= a.scaleRange[1])
        }
    }

    /// A plan saved before the field and augmentation existed still loads (as the whole slice);
    /// a plan with impossible values is refused.
    @Test func oldPlansLoadAndBadPlansAreRefused() throws {
        let old = #"{"sliceSize":256,"encoderSize":1024,"lowerPercentile":0.5,"upperPercentile":99.5,"pixelMean":[1,2,3],"pixelStd":[1,1,1]}"#
        let plan = try JSONDecoder().decode(PreprocessingPlan.self, from: Data(old.utf8))
        #expect(plan.fieldOfViewMM == nil && plan.augmentation == nil && plan.sliceSize == 256)
        #expect(!plan.standardizeEmbeddings && plan.embeddingStatistics == nil)
        // Without the embedding fields a plan writes the keys it always had (cache keys unchanged).
        let keys = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(PreprocessingPlan.paper(encoderSize: 1024))) as? [String: Any]).keys
        #expect(Set(keys) == ["sliceSize", "encoderSize", "lowerPercentile", "upperPercentile", "pixelMean", "pixelStd"])
        let bad = #"{"sliceSize":256,"encoderSize":1024,"lowerPercentile":50,"upperPercentile":10,"pixelMean":[1,2,3],"pixelStd":[1,1,1]}"#
        #expect(throws: DecodingError.self) { _ = try JSONDecoder().decode(PreprocessingPlan.self, from: Data(bad.utf8)) }
        let round = try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(PreprocessingPlan.robust(encoderSize: 256)))
        #expect(round == .robust(encoderSize: 256))
    }

    /// Channel statistics against hand-computed values; standardising by them gives each
    /// channel mean 0 and spread 1; they survive a save and load; bad ones are refused.
    @Test func embeddingStatistics() throws {
        // Two embeddings [2, 1, 2]: channel 0 holds 1, 3, 5, 7 (mean 4, std sqrt(5)); channel 1 holds 2, 2, 2, 2.
        let a = Tensor(shape: [2, 1, 2], data: [1, 3, 2, 2]), b = Tensor(shape: [2, 1, 2], data: [5, 7, 2, 2])
        let s = ChannelStatistics.of([a, b])
        #expect(abs(s.mean[0] - 4) < 1e-6 && abs(s.std[0] - Float(5).squareRoot()) < 1e-5)
        #expect(abs(s.mean[1] - 2) < 1e-6 && s.std[1] == 1e-6)  // a constant channel: floor, no division by zero
        let z = s.standardize(b)
        #expect(abs(z.data[0] - 1 / Float(5).squareRoot()) < 1e-5 && abs(z.data[1] - 3 / Float(5).squareRoot()) < 1e-5)
        #expect(z.data[2] == 0 && z.data[3] == 0)
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        plan.embeddingStatistics = s
        #expect(plan.headInput(b) == z)
        #expect(PreprocessingPlan.paper(encoderSize: 256).headInput(b) == b)
        let round = try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(plan))
        #expect(round == plan)
        for bad in [#"{"mean":[0,1],"std":[1]}"#, #"{"mean":[0],"std":[0]}"#, #"{"mean":[],"std":[]}"#] {
            #expect(throws: DecodingError.self) { _ = try JSONDecoder().decode(ChannelStatistics.self, from: Data(bad.utf8)) }
        }
        // The statistics apply after the encoder: they do not change which cache entry a slice uses.
        let pixels: [Float] = [1, 2, 3]
        #expect(EmbeddingCache.key(encoder: "e", plan: plan, pixels: pixels) == EmbeddingCache.key(encoder: "e", plan: .robust(encoderSize: 256), pixels: pixels))
    }

    /// Training completes a plan that asks for statistics from the training views only, and
    /// standardises training and validation samples by them; a plan that has them is kept.
    @Test func standardizeForTraining() {
        func sample(_ v: [Float]) -> TrainingSample { TrainingSample(embedding: Tensor(shape: [1, 1, 2], data: v), labels: [0], source: "s") }
        var train = [sample([1, 3]), sample([5, 7])], val = [sample([4, 9])]
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        SliceData.standardizeForTraining(train: &train, validation: &val, plan: &plan)
        let s = try! #require(plan.embeddingStatistics)
        #expect(s.mean == [4] && abs(s.std[0] - Float(5).squareRoot()) < 1e-5)
        #expect(abs(val[0].embedding.data[0]) < 1e-6 && abs(val[0].embedding.data[1] - 5 / Float(5).squareRoot()) < 1e-5)
        var again = train
        SliceData.standardizeForTraining(train: &again, validation: &val, plan: &plan)
        #expect(again.map(\.embedding) == train.map(\.embedding) && plan.embeddingStatistics == s)
        var paper = PreprocessingPlan.paper(encoderSize: 256), raw = [sample([1, 3])]
        SliceData.standardizeForTraining(train: &raw, validation: &val, plan: &paper)
        #expect(paper.embeddingStatistics == nil && raw[0].embedding.data == [1, 3])
    }

    /// Heads from scratch standardise their input; an AutoSAM head that starts from a
    /// checkpoint's pretrained mask decoder gets the raw embedding it was trained on.
    @Test func headSetupPlans() throws {
        let random = try FrozenEncoder(source: "tiny")
        let checkpoint = try FrozenEncoder(source: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("SegmentAnythingTests/Fixtures/tiny_a.pth").path)
        #expect(random.isRandom && !checkpoint.isRandom)
        for kind in HeadKind.allCases {
            #expect(HeadSetup.plan(for: random, head: kind).standardizeEmbeddings)
            #expect(HeadSetup.plan(for: checkpoint, head: kind).standardizeEmbeddings == (kind != .autosam))
        }
    }

    /// Test-time rotations: view r of n is the plain field turned by r * 360 / n degrees (a half
    /// turn of the plain window is the window reversed); consistent views give back the labels;
    /// the count is saved with the plan only when it is not 1, does not change cache keys, and
    /// an impossible count is refused.
    /// The uncertainty beside the labels: the labels are those of `labelsOnSlice`; logits that
    /// say nothing give ln 4 nats on every pixel of the field (none outside it, where the slice
    /// is background for sure); confident logits give almost none; views that disagree give
    /// more than views that agree.
    @Test func sliceUncertaintyIsTheEntropyOfTheProbabilities() {
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        plan.fieldOfViewMM = 60  // smaller than the 144 x 84 mm slice: some pixels lie outside
        let s = labelSlice()
        let side = plan.sliceSize, plane = side * side
        // Confident logits, each view its own field's labels (view r of n is rotated).
        func confident(_ n: Int) -> [Tensor] {
            (0..<n).map { r in
                var t = oneHot(plan.labels(s, side: side, view: plan.inferenceView(r, of: n)), side: side)
                t.data = t.data.map { $0 * 20 }
                return t
            }
        }
        let flat = plan.labelsAndUncertainty(viewLogits: [Tensor(zeros: [4, side, side])], width: s.width, height: s.height, spacing: s.spacing)
        #expect(flat.uncertainty.heartPixels == 0 && flat.labels.allSatisfy { $0 == 0 })
        for views in [confident(1), confident(2)] {
            let (labels, u) = plan.labelsAndUncertainty(viewLogits: views, width: s.width, height: s.height, spacing: s.spacing)
            #expect(labels == plan.labelsOnSlice(viewLogits: views, width: s.width, height: s.height, spacing: s.spacing))
            #expect(u.heartPixels == labels.count { $0 != 0 } && u.heartPixels > 0)
            // Views that agree and are sure: next to nothing (only pixels on a boundary).
            #expect(u.entropy >= 0 && u.entropy < 0.05 * flat.uncertainty.entropy, "\(u.entropy) vs \(flat.uncertainty.entropy)")
        }
        let perPixel = flat.uncertainty.entropy / log(4.0)
        #expect(perPixel > 0.2 * Double(s.width * s.height) && perPixel < 0.9 * Double(s.width * s.height), "\(perPixel) of \(s.width * s.height)")
        #expect(abs(perPixel - perPixel.rounded()) < 1e-2, "whole pixels of ln 4 each: \(perPixel)")
        var lv = Tensor(zeros: [4, side, side]), rv = Tensor(zeros: [4, side, side])
        for i in 0..<plane { lv.data[3 * plane + i] = 5; rv.data[plane + i] = 5 }
        let agree = plan.labelsAndUncertainty(viewLogits: [lv, lv], width: s.width, height: s.height, spacing: s.spacing).uncertainty
        let split = plan.labelsAndUncertainty(viewLogits: [rv, lv], width: s.width, height: s.height, spacing: s.spacing).uncertainty
        #expect(split.entropy > 3 * agree.entropy && agree.heartPixels == split.heartPixels, "\(split.entropy) vs \(agree.entropy)")
        #expect(VolumeUncertainty(slices: [agree, split]).score == (agree.entropy + split.entropy) / Double(2 * agree.heartPixels))
        #expect(VolumeUncertainty(slices: [flat.uncertainty]).score == VolumeUncertainty.noHeartScore)
    }

    /// Spearman's rank correlation, checked against scipy.stats.spearmanr on a case with ties.
    @Test func spearmanRanksWithTies() throws {
        #expect(spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1 && spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1)
        let rho = try #require(spearman([1, 2, 2, 3, 5], [2, 1, 4, 3, 6]))
        #expect(abs(rho - 0.6668859288553503) < 1e-12, "\(rho)")
        #expect(spearman([1, 1, 1], [1, 2, 3]) == nil && spearman([1, 2], [2, 1]) == nil)
    }

    @Test func testTimeRotations() throws {
        var plan = PreprocessingPlan.robust(encoderSize: 256)
        plan.fieldOfViewMM = 120
        plan.lowerPercentile = 0
        plan.upperPercentile = 100
        let s = labelSlice()
        let image = Slice2D<Float>(width: s.width, height: s.height, pixels: s.pixels.map { Float($0) * 100 }, spacing: s.spacing)
        let windows = plan.inferenceWindows(image, rotations: 4)
        #expect(windows.count == 4 && windows[0] == plan.window(image))
        let halfTurn = windows[2], plain = windows[0]
        let worst = zip(halfTurn, plain.reversed()).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-2, "\(worst)")
        #expect(windows[1] != plain && windows[3] != plain)
        // Each view's logits: its own field's labels, one-hot. Back on the slice they agree.
        let side = plan.sliceSize
        let views = (0..<4).map { oneHot(plan.labels(s, side: side, view: plan.inferenceView($0, of: 4)), side: side) }
        let back = plan.labelsOnSlice(viewLogits: views, width: s.width, height: s.height, spacing: s.spacing)
        for c: UInt8 in 1...3 { #expect(dice(back, s.pixels, c) > 0.97, "class \(c): \(dice(back, s.pixels, c))") }
        // Views that disagree: the majority wins (three say LV everywhere, one says RV).
        var lv = Tensor(zeros: [4, side, side]), rv = Tensor(zeros: [4, side, side])
        for i in 0..<(side * side) { lv.data[3 * side * side + i] = 5; rv.data[side * side + i] = 5 }
        let vote = plan.labelsOnSlice(viewLogits: [rv, lv, lv, lv], width: s.width, height: s.height, spacing: s.spacing)
        #expect(vote[35 * s.width + 40] == 3)
        // Saved only when not 1; no effect on the embedding cache key; bad counts refused.
        let plainKeys = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(plan)) as? [String: Any]).keys
        #expect(!plainKeys.contains("testTimeRotations"))
        var rotated = plan
        rotated.testTimeRotations = 4
        #expect(try JSONDecoder().decode(PreprocessingPlan.self, from: JSONEncoder().encode(rotated)) == rotated)
        let pixels: [Float] = [1, 2, 3]
        #expect(EmbeddingCache.key(encoder: "e", plan: rotated, pixels: pixels) == EmbeddingCache.key(encoder: "e", plan: plan, pixels: pixels))
        for n in [0, 65] {
            rotated.testTimeRotations = n
            let data = try JSONEncoder().encode(rotated)
            #expect(throws: DecodingError.self) { _ = try JSONDecoder().decode(PreprocessingPlan.self, from: data) }
        }
    }
}
