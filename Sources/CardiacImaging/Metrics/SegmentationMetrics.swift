import Foundation

/// Overlap and surface-distance scores of one structure, prediction against reference.
///
/// Empty-mask conventions (the usual ACDC ones):
/// - both masks empty: Dice 1, ASSD 0, HD95 0, Hausdorff 0 (nothing to find, nothing found);
/// - exactly one mask empty: Dice 0, and ASSD, HD95 and Hausdorff undefined (`nil`, written
///   as `null` in JSON), since one side has no surface to measure from.
public struct ClassMetrics: Codable, Equatable, Sendable {
    /// Label value (1 RV, 2 Myo, 3 LV).
    public var label: UInt8
    /// Structure name ("RV", "Myo", "LV", or "label N" for other values).
    public var name: String
    /// 2|P ∩ R| / (|P| + |R|).
    public var dice: Double
    /// Average symmetric surface distance in mm (medpy `assd`).
    public var assd: Double?
    /// 95th-percentile symmetric Hausdorff distance in mm (medpy `hd95`).
    public var hd95: Double?
    /// Hausdorff distance in mm (medpy `hd`).
    public var hausdorff: Double?
    public var predictedVoxels: Int
    public var referenceVoxels: Int
    public var overlapVoxels: Int

    public init(
        label: UInt8, name: String, dice: Double, assd: Double?, hd95: Double?, hausdorff: Double?,
        predictedVoxels: Int, referenceVoxels: Int, overlapVoxels: Int
    ) {
        self.label = label
        self.name = name
        self.dice = dice
        self.assd = assd
        self.hd95 = hd95
        self.hausdorff = hausdorff
        self.predictedVoxels = predictedVoxels
        self.referenceVoxels = referenceVoxels
        self.overlapVoxels = overlapVoxels
    }

    enum CodingKeys: String, CodingKey {
        case label, name, dice, assd, hd95, hausdorff, predictedVoxels, referenceVoxels, overlapVoxels
    }

    /// Writes missing distances as explicit `null`s rather than leaving the keys out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(label, forKey: .label)
        try c.encode(name, forKey: .name)
        try c.encode(dice, forKey: .dice)
        try c.encode(assd, forKey: .assd)
        try c.encode(hd95, forKey: .hd95)
        try c.encode(hausdorff, forKey: .hausdorff)
        try c.encode(predictedVoxels, forKey: .predictedVoxels)
        try c.encode(referenceVoxels, forKey: .referenceVoxels)
        try c.encode(overlapVoxels, forKey: .overlapVoxels)
    }
}

/// Scores of one volume: one `ClassMetrics` per structure and their means.
public struct VolumeMetrics: Codable, Equatable, Sendable {
    /// Per structure, in the order evaluated (RV, Myo, LV by default).
    public var classes: [ClassMetrics]
    /// Mean Dice over all classes.
    public var meanDice: Double
    /// Means over the classes where the value is defined; nil when it is defined for none.
    public var meanASSD: Double?
    public var meanHD95: Double?
    public var meanHausdorff: Double?
    /// Voxel spacing (mm, i j k) the distances were measured with.
    public var spacing: [Double]

    public init(classes: [ClassMetrics], spacing: SIMD3<Double>) {
        self.classes = classes
        self.meanDice = classes.isEmpty ? 0 : classes.map(\.dice).reduce(0, +) / Double(classes.count)
        func definedMean(_ values: [Double?]) -> Double? {
            let v = values.compactMap { $0 }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        self.meanASSD = definedMean(classes.map(\.assd))
        self.meanHD95 = definedMean(classes.map(\.hd95))
        self.meanHausdorff = definedMean(classes.map(\.hausdorff))
        self.spacing = [spacing.x, spacing.y, spacing.z]
    }

    /// The scores of one label, if it was evaluated.
    public subscript(label: UInt8) -> ClassMetrics? { classes.first { $0.label == label } }

    enum CodingKeys: String, CodingKey {
        case classes, meanDice, meanASSD, meanHD95, meanHausdorff, spacing
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(classes, forKey: .classes)
        try c.encode(meanDice, forKey: .meanDice)
        try c.encode(meanASSD, forKey: .meanASSD)
        try c.encode(meanHD95, forKey: .meanHD95)
        try c.encode(meanHausdorff, forKey: .meanHausdorff)
        try c.encode(spacing, forKey: .spacing)
    }

    /// Pretty-printed JSON with sorted keys; undefined distances are `null`.
    public func jsonData() throws -> Data { try sortedJSON(self) }
}

/// Dice and surface distances between a predicted and a reference label map.
public enum SegmentationMetrics {
    /// Dice of two binary masks: 2|A ∩ B| / (|A| + |B|); 1 when both are empty.
    public static func dice(_ a: [Bool], _ b: [Bool]) -> Double {
        precondition(a.count == b.count, "masks of different sizes")
        var na = 0, nb = 0, both = 0
        for idx in a.indices {
            if a[idx] { na += 1 }
            if b[idx] { nb += 1 }
            if a[idx] && b[idx] { both += 1 }
        }
        return na + nb == 0 ? 1 : 2 * Double(both) / Double(na + nb)
    }

    /// Dice of one label; 1 when neither map holds it. Throws `gridMismatch` unless both maps
    /// lie on the same grid.
    public static func dice(
        prediction: LabelMap, reference: LabelMap, label: UInt8, tolerance: Double = 1e-4
    ) throws -> Double {
        try checkSameGrid(prediction, reference, tolerance: tolerance)
        return dice(prediction.mask(label), reference.mask(label))
    }

    /// Dice, ASSD, HD95 and Hausdorff of one label, distances in mm with the reference's voxel
    /// spacing. See `ClassMetrics` for the empty-mask conventions. Throws `gridMismatch`
    /// unless both maps have the same shape and affines within `tolerance` mm.
    public static func evaluate(
        prediction: LabelMap, reference: LabelMap, label: UInt8, tolerance: Double = 1e-4
    ) throws -> ClassMetrics {
        try checkSameGrid(prediction, reference, tolerance: tolerance)
        return classMetrics(prediction, reference, label: label)
    }

    /// Scores of each structure (RV, Myo, LV by default) and their means.
    public static func evaluate(
        prediction: LabelMap, reference: LabelMap,
        labels: [UInt8] = CardiacLabel.structures.map(\.rawValue), tolerance: Double = 1e-4
    ) throws -> VolumeMetrics {
        try checkSameGrid(prediction, reference, tolerance: tolerance)
        let classes = labels.map { classMetrics(prediction, reference, label: $0) }
        return VolumeMetrics(classes: classes, spacing: reference.geometry.spacing)
    }

    static func classMetrics(_ p: LabelMap, _ r: LabelMap, label: UInt8) -> ClassMetrics {
        let a = p.mask(label), b = r.mask(label)
        let na = a.reduce(0) { $0 + ($1 ? 1 : 0) }
        let nb = b.reduce(0) { $0 + ($1 ? 1 : 0) }
        var both = 0
        for idx in a.indices where a[idx] && b[idx] { both += 1 }
        let name = CardiacLabel(rawValue: label)?.name ?? "label \(label)"
        let d = na + nb == 0 ? 1 : 2 * Double(both) / Double(na + nb)
        var assd: Double?, hd95: Double?, hd: Double?
        if na == 0 && nb == 0 {
            (assd, hd95, hd) = (0, 0, 0)
        } else if let s = SurfaceDistances.compute(
            a, b, shape: r.shape, spacing: r.geometry.spacing)
        {
            (assd, hd95, hd) = (s.assd, s.hd95, s.hausdorff)
        }
        return ClassMetrics(
            label: label, name: name, dice: d, assd: assd, hd95: hd95, hausdorff: hd,
            predictedVoxels: na, referenceVoxels: nb, overlapVoxels: both)
    }

    static func checkSameGrid(_ a: LabelMap, _ b: LabelMap, tolerance: Double) throws {
        guard a.shape == b.shape else {
            throw ImagingError.gridMismatch("prediction is \(a.shape) but the reference is \(b.shape)")
        }
        guard a.geometry.matches(b.geometry, tolerance: tolerance) else {
            let d = a.geometry.affine.maxAbsDifference(b.geometry.affine)
            throw ImagingError.gridMismatch(
                "prediction affine differs from the reference's by up to \(d) mm")
        }
    }
}

/// Pretty-printed JSON with sorted keys (stable output for files and diffs).
func sortedJSON<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try encoder.encode(value)
}
