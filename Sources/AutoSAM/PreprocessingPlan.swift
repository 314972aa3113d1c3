import CardiacImaging
import Foundation
import Tensor

/// How a short-axis slice becomes the encoder's input, saved beside the head weights so that
/// inference replays training exactly (nnU-Net's habit).
///
/// A slice is resampled into a square "field" of `sliceSize` x `sliceSize` pixels: the whole
/// slice stretched to a square (the paper), or a square of `fieldOfViewMM` millimetres around
/// the slice centre at the slice's own physical spacing (our default: the heart covers more
/// of the encoder's grid, and every scanner's pixel size maps to the same scale). Training
/// views may add a random rotation, scale, shift and intensity change (augmentation) before
/// encoding. Predictions are mapped back through the same transform onto the slice's own grid.
public struct PreprocessingPlan: Codable, Equatable, Sendable {
    /// Side of the square field the slice is resampled to (bilinear; labels nearest).
    public var sliceSize: Int
    /// Encoder input side (the checkpoint's image size).
    public var encoderSize: Int
    /// Intensity window: values are clipped to these percentiles of the field, then scaled to
    /// 0...255 (the paper min-max normalises: percentiles 0 and 100).
    public var lowerPercentile: Double
    public var upperPercentile: Double
    /// SAM's pixel normalisation, applied to the 3 replicated channels.
    public var pixelMean: [Float]
    public var pixelStd: [Float]
    /// Side in millimetres of the square field around the slice centre; nil = the whole slice.
    public var fieldOfViewMM: Double?
    /// Random training views per slice (in addition to the plain one); nil = none.
    public var augmentation: Augmentation?
    /// Standardise each embedding channel before the head, by statistics of the training
    /// embeddings (`embeddingStatistics`, filled in by training). A random encoder's channels
    /// carry a large constant offset (about 77% of their energy on the demo encoder) that
    /// leaves the head's first layer badly conditioned. Off for heads that start from a
    /// pretrained mask decoder, which expects the raw embedding.
    public var standardizeEmbeddings = false
    public var embeddingStatistics: ChannelStatistics?
    /// Inference views per slice: the plain field and its rotations about the field centre by
    /// multiples of 360 / n degrees; the head's class probabilities are averaged on the slice
    /// grid (test-time augmentation). Each view costs one encoder run per slice.
    public var testTimeRotations = 1
    /// The counts a plan, a command or a caller may ask for.
    public static let testTimeRotationsRange = 1...64
    /// Find the heart first, then place the field around it (nil: the field stays around the
    /// slice centre). Needs `fieldOfViewMM`. See `Localization`.
    public var localization: Localization?

    /// The paper's preprocessing: the whole slice, min-max, 256-pixel slices, no augmentation.
    public static func paper(encoderSize: Int) -> PreprocessingPlan {
        PreprocessingPlan(
            sliceSize: 256, encoderSize: encoderSize, lowerPercentile: 0, upperPercentile: 100,
            pixelMean: [123.675, 116.28, 103.53], pixelStd: [58.395, 57.12, 57.375], fieldOfViewMM: nil, augmentation: nil)
    }

    /// Our default: a robust intensity window (0.5 / 99.5 percentiles, against bright
    /// outliers), a 224 mm field around the slice centre, and augmented training views
    /// (`views` per slice when given, each one encoder run per slice; `elasticMM` sets the
    /// elastic deformation's strength, off by default).
    public static func robust(encoderSize: Int, views: Int? = nil, elasticMM: Double? = nil) -> PreprocessingPlan {
        var p = paper(encoderSize: encoderSize)
        p.lowerPercentile = 0.5
        p.upperPercentile = 99.5
        p.fieldOfViewMM = 224
        p.augmentation = Augmentation()
        p.standardizeEmbeddings = true
        if let views { p.augmentation?.views = views }
        if let elasticMM { p.augmentation?.elasticMM = elasticMM }
        return p
    }

    enum CodingKeys: String, CodingKey {
        case sliceSize, encoderSize, lowerPercentile, upperPercentile, pixelMean, pixelStd, fieldOfViewMM, augmentation
        case standardizeEmbeddings, embeddingStatistics, testTimeRotations, localization
    }

    public init(
        sliceSize: Int, encoderSize: Int, lowerPercentile: Double, upperPercentile: Double, pixelMean: [Float],
        pixelStd: [Float], fieldOfViewMM: Double?, augmentation: Augmentation?
    ) {
        self.sliceSize = sliceSize
        self.encoderSize = encoderSize
        self.lowerPercentile = lowerPercentile
        self.upperPercentile = upperPercentile
        self.pixelMean = pixelMean
        self.pixelStd = pixelStd
        self.fieldOfViewMM = fieldOfViewMM
        self.augmentation = augmentation
    }

    /// Written without the embedding fields while they are off, so a plan without them has the
    /// same bytes (and embedding-cache keys) as before they existed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(sliceSize, forKey: .sliceSize)
        try c.encode(encoderSize, forKey: .encoderSize)
        try c.encode(lowerPercentile, forKey: .lowerPercentile)
        try c.encode(upperPercentile, forKey: .upperPercentile)
        try c.encode(pixelMean, forKey: .pixelMean)
        try c.encode(pixelStd, forKey: .pixelStd)
        try c.encodeIfPresent(fieldOfViewMM, forKey: .fieldOfViewMM)
        try c.encodeIfPresent(augmentation, forKey: .augmentation)
        if standardizeEmbeddings { try c.encode(true, forKey: .standardizeEmbeddings) }
        try c.encodeIfPresent(embeddingStatistics, forKey: .embeddingStatistics)
        if testTimeRotations != 1 { try c.encode(testTimeRotations, forKey: .testTimeRotations) }
        try c.encodeIfPresent(localization, forKey: .localization)
    }

    /// Plans saved before the field and augmentation existed read as the whole slice.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sliceSize = try c.decode(Int.self, forKey: .sliceSize)
        encoderSize = try c.decode(Int.self, forKey: .encoderSize)
        lowerPercentile = try c.decode(Double.self, forKey: .lowerPercentile)
        upperPercentile = try c.decode(Double.self, forKey: .upperPercentile)
        pixelMean = try c.decode([Float].self, forKey: .pixelMean)
        pixelStd = try c.decode([Float].self, forKey: .pixelStd)
        fieldOfViewMM = try c.decodeIfPresent(Double.self, forKey: .fieldOfViewMM)
        augmentation = try c.decodeIfPresent(Augmentation.self, forKey: .augmentation)
        standardizeEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .standardizeEmbeddings) ?? false
        embeddingStatistics = try c.decodeIfPresent(ChannelStatistics.self, forKey: .embeddingStatistics)
        testTimeRotations = try c.decodeIfPresent(Int.self, forKey: .testTimeRotations) ?? 1
        localization = try c.decodeIfPresent(Localization.self, forKey: .localization)
        guard localization == nil || fieldOfViewMM != nil else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "localisation needs a field of view in millimetres"))
        }
        guard sliceSize > 0, encoderSize > 0, pixelMean.count == 3, pixelStd.count == 3,
            0 <= lowerPercentile, lowerPercentile < upperPercentile, upperPercentile <= 100,
            fieldOfViewMM.map({ $0 > 0 }) ?? true, Self.testTimeRotationsRange.contains(testTimeRotations)
        else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "preprocessing plan has out-of-range values"))
        }
    }

    /// The head's input for an encoder embedding [C, g, g]: standardised by the plan's channel
    /// statistics when it has them, else unchanged.
    public func headInput(_ embedding: Tensor) -> Tensor {
        embeddingStatistics?.standardize(embedding) ?? embedding
    }

    // MARK: The field transform

    /// The plain (unaugmented) field of a slice.
    public func field(width: Int, height: Int, spacing: SIMD2<Double>) -> FieldTransform {
        let w = Double(width), h = Double(height)
        if let fov = fieldOfViewMM {
            return FieldTransform(center: SIMD2(w / 2, h / 2), m: [fov / spacing.x, 0, 0, fov / spacing.y])
        }
        return FieldTransform(center: SIMD2(w / 2, h / 2), m: [w, 0, 0, h])
    }

    /// The field of a slice, augmented by `view` (rotation, scale and shift about the centre).
    func field(_ width: Int, _ height: Int, _ spacing: SIMD2<Double>, view: AugmentedView?) -> FieldTransform {
        var f = field(width: width, height: height, spacing: spacing)
        if let view { f = f.augmented(view, spacing: spacing) }
        return f
    }

    /// The slice resampled into the field and windowed to 0...255: [sliceSize * sliceSize].
    public func window(_ slice: Slice2D<Float>) -> [Float] { window(slice, view: nil) }

    func window(_ slice: Slice2D<Float>, view: AugmentedView?) -> [Float] {
        let f = field(slice.width, slice.height, slice.spacing, view: view)
        let sampled = f.sampleBilinear(slice, side: sliceSize)
        let sorted = sampled.sorted()
        func pct(_ q: Double) -> Float {
            let i = min(sorted.count - 1, max(0, Int((q / 100 * Double(sorted.count - 1)).rounded())))
            return sorted[i]
        }
        let lo = pct(lowerPercentile), hi = pct(upperPercentile)
        let span = max(hi - lo, 1e-6)
        var out = sampled.map { min(max(($0 - lo) / span, 0), 1) * 255 }
        if let view { view.adjustIntensity(&out) }
        return out
    }

    /// Encoder input [3, encoderSize, encoderSize] of a windowed slice.
    public func encoderInput(_ windowed: [Float]) -> Tensor {
        let up = sliceSize == encoderSize
            ? Tensor(shape: [1, sliceSize, sliceSize], data: windowed)
            : Resize.bilinear(Tensor(shape: [1, sliceSize, sliceSize], data: windowed), height: encoderSize, width: encoderSize)
        var out = [Float](repeating: 0, count: 3 * encoderSize * encoderSize)
        let n = encoderSize * encoderSize
        for c in 0..<3 { for i in 0..<n { out[c * n + i] = (up.data[i] - pixelMean[c]) / pixelStd[c] } }
        return Tensor(shape: [3, encoderSize, encoderSize], data: out)
    }

    /// Labels resampled (nearest) into the field at `side` x `side` (outside the slice: background).
    public func labels(_ slice: Slice2D<UInt8>, side: Int) -> [UInt8] { labels(slice, side: side, view: nil) }

    func labels(_ slice: Slice2D<UInt8>, side: Int, view: AugmentedView?) -> [UInt8] {
        field(slice.width, slice.height, slice.spacing, view: view).sampleNearest(slice, side: side)
    }

    /// Class logits [K, S, S] over the plain field, mapped back onto a slice of the given grid
    /// (bilinear per class), then argmax; pixels outside the field are background.
    public func labelsOnSlice(logits: Tensor, width: Int, height: Int, spacing: SIMD2<Double>) -> [UInt8] {
        field(width: width, height: height, spacing: spacing).backProject(logits, width: width, height: height)
    }

    // MARK: Test-time rotations

    /// Inference view `r` of `n` with the field centred `centerMM` from the slice centre: the
    /// plain field (r = 0, no offset) or its rotation by r * 360 / n degrees about the field
    /// centre, with no change of scale or intensity.
    func inferenceView(_ r: Int, of n: Int, centerMM: SIMD2<Double> = .zero) -> AugmentedView? {
        r == 0 && centerMM == .zero ? nil : AugmentedView(
            rotation: 2 * .pi * Double(r) / Double(n), scale: 1, shiftMM: centerMM, mirror: false, brightness: 0, gamma: 1,
            noise: 0, noiseSeed: 0)
    }

    /// The windowed fields of a slice's `rotations` inference views (the first is the plain one),
    /// around `centerMM` (from `Localization`; zero: the slice centre).
    public func inferenceWindows(_ slice: Slice2D<Float>, rotations: Int, centerMM: SIMD2<Double> = .zero) -> [[Float]] {
        (0..<max(1, rotations)).map { window(slice, view: inferenceView($0, of: max(1, rotations), centerMM: centerMM)) }
    }

    /// Labels on the slice grid from the head's logits for each of `inferenceWindows`' views
    /// (same `centerMM`): one view is mapped back and argmaxed (bilinear per class; outside the
    /// field, background); several average their class probabilities (softmax of each view's
    /// logits mapped back onto the slice; outside a view's field a pixel counts as background
    /// in that view), then argmax.
    public func labelsOnSlice(viewLogits: [Tensor], width: Int, height: Int, spacing: SIMD2<Double>, centerMM: SIMD2<Double> = .zero) -> [UInt8] {
        if viewLogits.count == 1 {  // no probabilities needed
            return field(width, height, spacing, view: inferenceView(0, of: 1, centerMM: centerMM)).backProject(viewLogits[0], width: width, height: height)
        }
        return labelsAndUncertainty(viewLogits: viewLogits, width: width, height: height, spacing: spacing, centerMM: centerMM).labels
    }

    /// `labelsOnSlice`, and how unsure the head is of them: the entropy of the (view-averaged)
    /// class probabilities summed over the slice's pixels, beside the pixels labelled heart.
    /// The labels are the same either way.
    public func labelsAndUncertainty(
        viewLogits: [Tensor], width: Int, height: Int, spacing: SIMD2<Double>, centerMM: SIMD2<Double> = .zero
    ) -> (labels: [UInt8], uncertainty: SliceUncertainty) {
        precondition(!viewLogits.isEmpty)
        let n = viewLogits.count
        let k = viewLogits[0].shape[0], plane = width * height
        let labels = n == 1 ? labelsOnSlice(viewLogits: viewLogits, width: width, height: height, spacing: spacing, centerMM: centerMM) : nil
        var sum = [Float](repeating: 0, count: k * plane)
        for (r, logits) in viewLogits.enumerated() {
            field(width, height, spacing, view: inferenceView(r, of: n, centerMM: centerMM))
                .accumulateProbabilities(logits, width: width, height: height, into: &sum)
        }
        var out = [UInt8](repeating: 0, count: plane)
        var entropy = 0.0
        let scale = 1 / Float(n)
        for i in 0..<plane {
            var best = 0
            for c in 1..<k where sum[c * plane + i] > sum[best * plane + i] { best = c }
            out[i] = UInt8(best)
            var h: Float = 0
            for c in 0..<k {
                let q = sum[c * plane + i] * scale
                if q > 1e-12 { h -= q * logf(q) }
            }
            entropy += Double(h)
        }
        // One view: the labels are the logits' argmax as before (the probabilities' argmax is
        // the same but for ties in float rounding).
        let final = labels ?? out
        return (final, SliceUncertainty(entropy: entropy, heartPixels: final.count { $0 != 0 }))
    }

    // MARK: Localisation

    /// The coarse view of `Localization`: the field scaled by its `fieldScale` about the slice
    /// centre, nothing else changed.
    func coarseView(_ loc: Localization) -> AugmentedView {
        AugmentedView(rotation: 0, scale: loc.fieldScale, shiftMM: .zero, mirror: false, brightness: 0, gamma: 1, noise: 0, noiseSeed: 0)
    }

    /// The windowed coarse field of a slice (nil without localisation).
    public func coarseWindow(_ slice: Slice2D<Float>) -> [Float]? {
        localization.map { window(slice, view: coarseView($0)) }
    }

    /// Labels on the slice grid from the head's logits over `coarseWindow`.
    public func labelsOnSlice(coarseLogits: Tensor, width: Int, height: Int, spacing: SIMD2<Double>) -> [UInt8] {
        guard let loc = localization else { preconditionFailure("no localisation in this plan") }
        return field(width, height, spacing, view: coarseView(loc)).backProject(coarseLogits, width: width, height: height)
    }

    /// The heart centre of a frame (mm from the slice centre) by the coarse pass: a head's
    /// logits for each of `Localization.coarseSlices` seen through the coarse view
    /// (`coarseLogits`; one slice per core at a time), mapped back onto the slice, and the
    /// centre of what they label. nil without localisation, or when nothing is labelled.
    func locateHeart(_ slices: [Slice2D<Float>], coarseLogits: (Slice2D<Float>, AugmentedView) -> Tensor) -> SIMD2<Double>? {
        guard let loc = localization, let first = slices.first else { return nil }
        let picks = loc.coarseSlices(count: slices.count), view = coarseView(loc)
        let coarse = Parallel.map(picks.count) { i in
            let s = slices[picks[i]]
            return field(s.width, s.height, s.spacing, view: view).backProject(coarseLogits(s, view), width: s.width, height: s.height)
        }
        return Localization.center(of: coarse, width: first.width, height: first.height, spacing: first.spacing)
    }

    /// Training view `v` (> 0) of a slice named `key` in a frame whose heart centre (from its
    /// reference labels, `Localization.center`) lies `centerMM` from the slice centre. Without
    /// localisation, the augmentation's view about the slice centre, as always. With it, the
    /// fine views are placed around the heart as inference places them (plus the random shift),
    /// and every `coarseViewEvery`-th view is a coarse one: the field scaled by `fieldScale`
    /// (times the view's random scale) about the slice centre, shifted by up to
    /// `coarseShiftMM`, so the head learns to find a heart anywhere in a wide field.
    func trainingView(_ v: Int, key: String, centerMM: SIMD2<Double>) -> AugmentedView {
        guard let a = augmentation else { preconditionFailure("no augmentation in this plan") }
        var view = a.view(v, key: key)
        guard let loc = localization else { return view }
        if v % loc.coarseViewEvery == 0 {
            let mid = (a.scaleRange[0] * a.scaleRange[1]).squareRoot()
            view.scale *= loc.fieldScale / mid
            view.shiftMM = a.shiftMM > 0 ? view.shiftMM * (loc.coarseShiftMM / a.shiftMM) : .zero
        } else {
            view.shiftMM += centerMM
        }
        return view
    }
}

/// Find the heart before placing the field (ours, not the paper's; docs/ARCHITECTURE.md). A
/// fixed field around the slice centre misses a heart that the scanner did not centre: the head
/// first runs on a coarse field (`fieldScale` times as wide) of a few slices in the middle of
/// the stack, the heart centre is the median position of every pixel it labels there, and the
/// fine field of every slice is centred on it. Training shows the head both kinds of field
/// (`PreprocessingPlan.trainingView`).
public struct Localization: Codable, Equatable, Sendable {
    /// Side of the coarse field, as a multiple of the plan's field of view.
    public var fieldScale = 2.0
    /// Slices of the coarse pass: evenly spread over the middle of the stack.
    public var slices = 3
    /// Every n-th training view is a coarse view.
    public var coarseViewEvery = 4
    /// Largest shift (each axis) of a coarse training view, in millimetres.
    public var coarseShiftMM = 90.0

    public init() {}

    enum CodingKeys: String, CodingKey { case fieldScale, slices, coarseViewEvery, coarseShiftMM }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        fieldScale = try c.decode(Double.self, forKey: .fieldScale)
        slices = try c.decode(Int.self, forKey: .slices)
        coarseViewEvery = try c.decode(Int.self, forKey: .coarseViewEvery)
        coarseShiftMM = try c.decode(Double.self, forKey: .coarseShiftMM)
        guard (1...4).contains(fieldScale), (1...32).contains(slices), (1...64).contains(coarseViewEvery), (0...500).contains(coarseShiftMM) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "localisation needs a field scale 1...4, 1...32 slices, a coarse view every 1...64 views and a shift 0...500 mm"))
        }
    }

    /// The slices of the coarse pass in a stack of `count`: `slices` indices spread evenly over
    /// the middle (all of them in a stack that has no more).
    public func coarseSlices(count: Int) -> [Int] {
        guard count > slices else { return Array(0..<count) }
        return (1...slices).map { (($0 * count) / (slices + 1)) }
    }

    /// The median position, in millimetres from the slice centre, of the labelled (non-zero)
    /// pixels of some slices of one grid; nil when nothing is labelled.
    public static func center(of slices: [[UInt8]], width: Int, height: Int, spacing: SIMD2<Double>) -> SIMD2<Double>? {
        var xs: [Double] = [], ys: [Double] = []
        for labels in slices {
            precondition(labels.count == width * height)
            for y in 0..<height {
                for x in 0..<width where labels[y * width + x] != 0 {
                    xs.append((Double(x) + 0.5 - Double(width) / 2) * spacing.x)
                    ys.append((Double(y) + 0.5 - Double(height) / 2) * spacing.y)
                }
            }
        }
        guard !xs.isEmpty else { return nil }
        func median(_ v: [Double]) -> Double {
            let s = v.sorted(), n = s.count
            return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
        }
        return SIMD2(median(xs), median(ys))
    }
}

/// A 2D map from a square field's normalised coordinates u in [-0.5, 0.5]^2 to slice pixel
/// coordinates (continuous, pixel centres at i + 0.5): p = center + M u.
public struct FieldTransform: Sendable, Equatable {
    public var center: SIMD2<Double>
    /// Row-major 2x2 matrix [m00, m01, m10, m11].
    public var m: [Double]
    /// An elastic warp of the sampling positions (training views only), with the slice's
    /// pixel spacing (mm) it works in.
    var warp: ElasticWarp? = nil
    var warpSpacing = SIMD2<Double>(1, 1)

    func source(_ u: SIMD2<Double>) -> SIMD2<Double> {
        let p = center + SIMD2(m[0] * u.x + m[1] * u.y, m[2] * u.x + m[3] * u.y)
        guard let warp else { return p }
        return p + warp.displacement((p - center) * warpSpacing) / warpSpacing
    }

    /// The field coordinates of slice pixel position p (not defined for a warped field, which
    /// only training views have).
    func inverse(_ p: SIMD2<Double>) -> SIMD2<Double> {
        precondition(warp == nil, "inverse of an elastically warped field")
        let d = p - center, det = m[0] * m[3] - m[1] * m[2]
        return SIMD2((m[3] * d.x - m[1] * d.y) / det, (-m[2] * d.x + m[0] * d.y) / det)
    }

    /// Rotation, isotropic scale (in millimetres, so anisotropic pixels stay correct) and shift.
    func augmented(_ v: AugmentedView, spacing: SIMD2<Double>) -> FieldTransform {
        // Work in millimetres: M_mm = diag(spacing) M; new = R S M_mm; back to pixels.
        let c = cos(v.rotation), s = sin(v.rotation)
        let a = [m[0] * spacing.x, m[1] * spacing.x, m[2] * spacing.y, m[3] * spacing.y]
        let r = [c * v.scale, -s * v.scale, s * v.scale, c * v.scale]
        var n = [r[0] * a[0] + r[1] * a[2], r[0] * a[1] + r[1] * a[3], r[2] * a[0] + r[3] * a[2], r[2] * a[1] + r[3] * a[3]]
        if v.mirror { n[0] = -n[0]; n[2] = -n[2] }
        return FieldTransform(
            center: center + SIMD2(v.shiftMM.x / spacing.x, v.shiftMM.y / spacing.y),
            m: [n[0] / spacing.x, n[1] / spacing.x, n[2] / spacing.y, n[3] / spacing.y], warp: v.warp, warpSpacing: spacing)
    }

    @inline(__always) func u(_ i: Int, _ side: Int) -> Double { (Double(i) + 0.5) / Double(side) - 0.5 }

    /// Bilinear samples at the field's pixel centres; outside the slice the edge value repeats.
    func sampleBilinear(_ s: Slice2D<Float>, side: Int) -> [Float] {
        var out = [Float](repeating: 0, count: side * side)
        for j in 0..<side {
            for i in 0..<side {
                let p = source(SIMD2(u(i, side), u(j, side))) - 0.5
                out[j * side + i] = BilinearTap(x: p.x, y: p.y, width: s.width, height: s.height).sample(s.pixels, offset: 0)
            }
        }
        return out
    }

    /// Nearest samples; outside the slice: 0 (background).
    func sampleNearest(_ s: Slice2D<UInt8>, side: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: side * side)
        for j in 0..<side {
            for i in 0..<side {
                let p = source(SIMD2(u(i, side), u(j, side)))
                let x = Int(p.x.rounded(.down)), y = Int(p.y.rounded(.down))
                if x >= 0, y >= 0, x < s.width, y < s.height { out[j * side + i] = s.pixels[y * s.width + x] }
            }
        }
        return out
    }

    /// Calls `body(pixel index, tap into an S x S plane)` for every pixel of a width x height
    /// slice that lies inside this field (of side S).
    private func forEachPixelInField(width: Int, height: Int, side: Int, _ body: (Int, BilinearTap) -> Void) {
        for y in 0..<height {
            for x in 0..<width {
                let u = inverse(SIMD2(Double(x) + 0.5, Double(y) + 0.5))
                guard abs(u.x) <= 0.5, abs(u.y) <= 0.5 else { continue }
                body(y * width + x, BilinearTap(x: (u.x + 0.5) * Double(side) - 0.5, y: (u.y + 0.5) * Double(side) - 0.5, width: side, height: side))
            }
        }
    }

    /// Argmax labels on the slice grid of logits [K, S, S] given over this field.
    func backProject(_ logits: Tensor, width: Int, height: Int) -> [UInt8] {
        let k = logits.shape[0], side = logits.shape[1], plane = side * side
        var out = [UInt8](repeating: 0, count: width * height)
        var scores = [Float](repeating: 0, count: k)
        forEachPixelInField(width: width, height: height, side: side) { i, tap in
            for c in 0..<k { scores[c] = tap.sample(logits.data, offset: c * plane) }
            var best = 0
            for c in 1..<k where scores[c] > scores[best] { best = c }
            out[i] = UInt8(best)
        }
        return out
    }

    /// Adds the class probabilities on the slice grid (softmax of the bilinear logits [K, S, S]
    /// given over this field) to `sum` [K, height * width]; outside the field: background.
    func accumulateProbabilities(_ logits: Tensor, width: Int, height: Int, into sum: inout [Float]) {
        let k = logits.shape[0], side = logits.shape[1], plane = side * side, slicePlane = width * height
        var inside = [Bool](repeating: false, count: slicePlane)
        var scores = [Float](repeating: 0, count: k)
        forEachPixelInField(width: width, height: height, side: side) { i, tap in
            inside[i] = true
            var top = -Float.infinity
            for c in 0..<k { scores[c] = tap.sample(logits.data, offset: c * plane); top = max(top, scores[c]) }
            var total: Float = 0
            for c in 0..<k { scores[c] = expf(scores[c] - top); total += scores[c] }
            for c in 0..<k { sum[c * slicePlane + i] += scores[c] / total }
        }
        for i in 0..<slicePlane where !inside[i] { sum[i] += 1 }
    }
}

/// The four neighbours and weights of a bilinear sample at continuous pixel coordinates
/// (pixel centres at integers), clamped to the image: outside it the edge value repeats.
struct BilinearTap {
    let i00: Int, i01: Int, i10: Int, i11: Int
    let fx: Float, fy: Float

    init(x: Double, y: Double, width: Int, height: Int) {
        let cx = min(max(x, 0), Double(width - 1)), cy = min(max(y, 0), Double(height - 1))
        let x0 = Int(cx), y0 = Int(cy), x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        i00 = y0 * width + x0; i01 = y0 * width + x1; i10 = y1 * width + x0; i11 = y1 * width + x1
        fx = Float(cx - Double(x0)); fy = Float(cy - Double(y0))
    }

    @inline(__always) func sample(_ v: [Float], offset: Int) -> Float {
        let top = v[offset + i00] * (1 - fx) + v[offset + i01] * fx
        let bottom = v[offset + i10] * (1 - fx) + v[offset + i11] * fx
        return top * (1 - fy) + bottom * fy
    }
}

/// Ranges of the random training views (the paper: brightness, gamma, Gaussian noise, mirror,
/// elastic deformation, rotation, scaling).
public struct Augmentation: Codable, Equatable, Sendable {
    /// Random views per slice, each encoded once (and cached) in addition to the plain view.
    /// An epoch trains on one view of each slice, so few labelled slices need many views.
    public var views = 16
    /// The view counts a command may ask for.
    public static let viewsRange = 1...256
    /// Rotation range (+-), about the field centre. The full circle, as nnU-Net's default
    /// for 2D: the heart's in-plane orientation varies with the scanner's slice planning
    /// (the phantoms draw it uniformly), and with +-20 degrees a head trained on one or five
    /// volumes had seen only a sector of the orientations it was tested on (docs/ARCHITECTURE.md:
    /// one-volume CNN head 30.2 -> 46.9 mean Dice; five volumes, the experiment's split,
    /// 70.0 -> 76.3).
    public var rotationDegrees = 180.0
    /// Isotropic scale range (heart sizes vary about 1.8x between patients).
    public var scaleRange = [0.7, 1.4]
    public var shiftMM = 20.0
    /// Added to the 0...255 window, as a fraction of 255.
    public var brightness = 0.1
    public var gammaRange = [0.7, 1.5]
    /// Gaussian noise standard deviation, as a fraction of 255.
    public var noise = 0.03
    /// Mirror the field left-right with probability 1/2 (off by default: the right ventricle
    /// lies on one side of the left in every short-axis stack).
    public var mirror = false
    /// Elastic deformation: the standard deviation, in millimetres, of a smooth random
    /// displacement of the sampling positions (each axis), 0 for none. See `ElasticWarp`.
    public var elasticMM = 0.0
    /// The range of the displacement's wavelengths in millimetres (longer is smoother).
    public var elasticWavelengthMM = [60.0, 120.0]
    public var seed: UInt64 = 0
    /// Per-tissue contrast for each view (`AppearanceRandomization`): off by default.
    public var tissueContrast = false
    /// Largest smooth shading of a view, in log amplitude (0: none; 0.35 is about 0.7-1.4).
    public var shading = 0.0

    /// The elastic standard deviations a command may ask for (mm). Strong warps are scaled down
    /// so that none folds (`ElasticWarp`), so at a few millimetres and above the realised spread
    /// is below the setting.
    public static let elasticRange = 0.0...8.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case views, rotationDegrees, scaleRange, shiftMM, brightness, gammaRange, noise, mirror, elasticMM, elasticWavelengthMM, seed
        case tissueContrast, shading
    }

    /// Written without the appearance fields while they are off, so plans without them keep
    /// their bytes (and embedding-cache keys).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(views, forKey: .views)
        try c.encode(rotationDegrees, forKey: .rotationDegrees)
        try c.encode(scaleRange, forKey: .scaleRange)
        try c.encode(shiftMM, forKey: .shiftMM)
        try c.encode(brightness, forKey: .brightness)
        try c.encode(gammaRange, forKey: .gammaRange)
        try c.encode(noise, forKey: .noise)
        try c.encode(mirror, forKey: .mirror)
        try c.encode(elasticMM, forKey: .elasticMM)
        try c.encode(elasticWavelengthMM, forKey: .elasticWavelengthMM)
        try c.encode(seed, forKey: .seed)
        if tissueContrast { try c.encode(true, forKey: .tissueContrast) }
        if shading != 0 { try c.encode(shading, forKey: .shading) }
    }

    /// Plans saved before elastic deformation existed decode with it off.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        views = try c.decode(Int.self, forKey: .views)
        rotationDegrees = try c.decode(Double.self, forKey: .rotationDegrees)
        scaleRange = try c.decode([Double].self, forKey: .scaleRange)
        shiftMM = try c.decode(Double.self, forKey: .shiftMM)
        brightness = try c.decode(Double.self, forKey: .brightness)
        gammaRange = try c.decode([Double].self, forKey: .gammaRange)
        noise = try c.decode(Double.self, forKey: .noise)
        mirror = try c.decode(Bool.self, forKey: .mirror)
        elasticMM = try c.decodeIfPresent(Double.self, forKey: .elasticMM) ?? 0
        elasticWavelengthMM = try c.decodeIfPresent([Double].self, forKey: .elasticWavelengthMM) ?? [60, 120]
        seed = try c.decode(UInt64.self, forKey: .seed)
        tissueContrast = try c.decodeIfPresent(Bool.self, forKey: .tissueContrast) ?? false
        shading = try c.decodeIfPresent(Double.self, forKey: .shading) ?? 0
        guard (0...2).contains(shading), Self.elasticRange.contains(elasticMM), elasticWavelengthMM.count == 2,
              elasticWavelengthMM[0] > 0, elasticWavelengthMM[1] >= elasticWavelengthMM[0] else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "elastic deformation must be \(Self.elasticRange) mm with wavelengths 0 < min <= max, shading 0...2"))
        }
    }

    /// The `index`-th random view of a slice named `key` (a pure function of both and `seed`).
    func view(_ index: Int, key: String) -> AugmentedView {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        var g = SplitMix64(seed: h &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
        let rot = (g.unit() * 2 - 1) * rotationDegrees * .pi / 180
        let scale = scaleRange[0] + g.unit() * (scaleRange[1] - scaleRange[0])
        let shift = SIMD2((g.unit() * 2 - 1) * shiftMM, (g.unit() * 2 - 1) * shiftMM)
        let bright = (g.unit() * 2 - 1) * brightness * 255
        let gamma = exp(log(gammaRange[0]) + g.unit() * (log(gammaRange[1]) - log(gammaRange[0])))
        let flip = mirror && g.unit() < 0.5
        let noiseSeed = g.next()
        // Drawn last, so the other parameters of a view do not depend on it.
        let warp = elasticMM > 0 ? ElasticWarp(random: &g, std: elasticMM, wavelengths: elasticWavelengthMM) : nil
        return AugmentedView(
            rotation: rot, scale: scale, shiftMM: shift, mirror: flip, brightness: Float(bright), gamma: Float(gamma),
            noise: Float(noise * 255), noiseSeed: noiseSeed, warp: warp)
    }
}

/// A smooth random displacement field in millimetres on the slice plane: for each axis the sum
/// of a few plane waves, a sin(2 pi k . p + phase), with random directions, wavelengths in a
/// range and normal amplitudes, so each component has the given standard deviation on average
/// (less where a strong draw is scaled down so as not to fold).
/// The sampling position p (mm, relative to the field's centre) becomes p + d(p): image and
/// labels of a view are warped identically because both sample through the same field.
public struct ElasticWarp: Sendable, Equatable {
    /// Per wave: wave vector (cycles per mm), phase, amplitude (mm), axis (0: x, 1: y).
    struct Wave: Sendable, Equatable {
        var k: SIMD2<Double>
        var phase: Double
        var amplitude: Double
        var axis: Int
    }
    var waves: [Wave]

    /// Waves per axis. A sine's mean square is 1/2, so amplitudes of std sigma * sqrt(2 / n)
    /// give each component the variance sigma^2.
    static let wavesPerAxis = 3

    init(random g: inout SplitMix64, std: Double, wavelengths: [Double]) {
        let n = Self.wavesPerAxis
        var waves: [Wave] = []
        for axis in 0..<2 {
            for _ in 0..<n {
                let angle = g.unit() * 2 * .pi
                let lambda = wavelengths[0] + g.unit() * (wavelengths[1] - wavelengths[0])
                let phase = g.unit() * 2 * .pi
                // Box-Muller.
                let u1 = max(g.unit(), 1e-12), u2 = g.unit()
                let normal = (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
                waves.append(Wave(k: SIMD2(cos(angle), sin(angle)) / lambda, phase: phase,
                                  amplitude: normal * std * (2 / Double(n)).squareRoot(), axis: axis))
            }
        }
        // Each Jacobian entry of an axis's displacement is at most B = sum |a| 2 pi |k| over that
        // axis's waves, so det(I + J) >= 1 - B_x - B_y: a warp with B_x + B_y above 0.8 is
        // scaled down to it, and no warp folds (det >= 0.2) whatever the settings.
        let bound = waves.reduce(0) { $0 + abs($1.amplitude) * 2 * .pi * (($1.k.x * $1.k.x + $1.k.y * $1.k.y).squareRoot()) }
        if bound > Self.maximumStretch {
            for i in waves.indices { waves[i].amplitude *= Self.maximumStretch / bound }
        }
        self.waves = waves
    }

    /// The largest B_x + B_y a warp may have (see `init`).
    static let maximumStretch = 0.8

    /// The displacement (mm) at position p (mm).
    func displacement(_ p: SIMD2<Double>) -> SIMD2<Double> {
        var d = SIMD2<Double>(0, 0)
        for w in waves {
            let v = w.amplitude * sin(2 * .pi * (w.k.x * p.x + w.k.y * p.y) + w.phase)
            d[w.axis] += v
        }
        return d
    }
}

/// One random view's parameters.
struct AugmentedView {
    var rotation: Double
    var scale: Double
    var shiftMM: SIMD2<Double>
    var mirror: Bool
    var brightness: Float
    var gamma: Float
    var noise: Float
    var noiseSeed: UInt64
    var warp: ElasticWarp? = nil

    func adjustIntensity(_ v: inout [Float]) {
        guard gamma != 1 || brightness != 0 || noise > 0 else { return }
        var g = SplitMix64(seed: noiseSeed)
        for i in v.indices {
            var x = powf(max(v[i], 0) / 255, gamma) * 255 + brightness
            if noise > 0 {
                // Box-Muller.
                let u1 = max(g.unit(), 1e-12), u2 = g.unit()
                x += noise * Float(sqrt(-2 * log(u1)) * cos(2 * .pi * u2))
            }
            v[i] = min(max(x, 0), 255)
        }
    }
}

/// Per-channel mean and standard deviation of embeddings [C, g, g], over every position of
/// every training embedding.
public struct ChannelStatistics: Codable, Equatable, Sendable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mean = try c.decode([Float].self, forKey: .mean)
        std = try c.decode([Float].self, forKey: .std)
        guard !mean.isEmpty, mean.count == std.count, mean.allSatisfy(\.isFinite), std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription: "embedding statistics must be finite, positive spreads, one per channel"))
        }
    }

    enum CodingKeys: String, CodingKey { case mean, std }

    /// Statistics of a non-empty set of embeddings with the same channel count (accumulated in
    /// double precision; a spread below 1e-6 is taken as 1e-6).
    public static func of(_ embeddings: [Tensor]) -> ChannelStatistics {
        of(count: embeddings.count) { embeddings[$0] }
    }

    /// `of` the embeddings `embedding(0..<count)` gives, each asked for once and in turn (so
    /// cached training samples are read one at a time, never all held together).
    public static func of(count: Int, _ embedding: (Int) -> Tensor) -> ChannelStatistics {
        precondition(count > 0)
        let first = embedding(0), c = first.shape[0]
        var sum = [Double](repeating: 0, count: c), sq = [Double](repeating: 0, count: c)
        var n = 0
        for index in 0..<count {
            let e = index == 0 ? first : embedding(index)
            precondition(e.shape[0] == c)
            let plane = e.count / c
            n += plane
            e.data.withUnsafeBufferPointer { d in
                for ch in 0..<c {
                    var s = 0.0, q = 0.0
                    for i in (ch * plane)..<((ch + 1) * plane) { let v = Double(d[i]); s += v; q += v * v }
                    sum[ch] += s
                    sq[ch] += q
                }
            }
        }
        let mean = sum.map { $0 / Double(n) }
        // Rounding can leave a constant channel's variance slightly negative: clamp before the root.
        let std = zip(sq, mean).map { (q, m) in max(max(q / Double(n) - m * m, 0).squareRoot(), 1e-6) }
        return ChannelStatistics(mean: mean.map(Float.init), std: std.map(Float.init))
    }

    public func standardize(_ e: Tensor) -> Tensor {
        let c = mean.count
        precondition(e.shape[0] == c, "embedding has \(e.shape[0]) channels, statistics \(c)")
        let plane = e.count / c
        var out = e.data
        for ch in 0..<c {
            let m = mean[ch], inv = 1 / std[ch]
            for i in (ch * plane)..<((ch + 1) * plane) { out[i] = (out[i] - m) * inv }
        }
        return Tensor(shape: e.shape, data: out)
    }
}
