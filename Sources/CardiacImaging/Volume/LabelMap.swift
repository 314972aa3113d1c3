/// The structures a label map names, in the ACDC convention.
public enum CardiacLabel: UInt8, CaseIterable, Sendable, Codable {
    case background = 0
    case rv = 1
    case myo = 2
    case lv = 3

    public var name: String {
        switch self {
        case .background: "background"
        case .rv: "RV"
        case .myo: "Myo"
        case .lv: "LV"
        }
    }

    /// The foreground structures, in label order.
    public static let structures: [CardiacLabel] = [.rv, .myo, .lv]
}

/// A 3D segmentation: one UInt8 label per voxel (0 background, 1 RV, 2 Myo, 3 LV) on a grid
/// with the geometry of the image it segments.
public struct LabelMap: Sendable, Equatable {
    public var shape: GridShape
    public var geometry: VolumeGeometry
    public var labels: [UInt8]

    public init(shape: GridShape, geometry: VolumeGeometry, labels: [UInt8]) {
        precondition(shape.nt == 1, "a label map is 3D")
        precondition(labels.count == shape.count, "label count \(labels.count) != shape \(shape)")
        self.shape = shape
        self.geometry = geometry
        self.labels = labels
    }

    /// An all-background map on the grid of `image` (one frame of it).
    public init(emptyLike image: Volume) {
        self.init(
            shape: image.shape.spatial, geometry: image.geometry,
            labels: [UInt8](repeating: 0, count: image.shape.voxelsPerFrame))
    }

    /// Rebuilds a map from its slices (k order) on the given grid.
    public init(slices: [Slice2D<UInt8>], geometry: VolumeGeometry) throws {
        guard let first = slices.first else { throw ImagingError.invalidArgument("no slices") }
        for s in slices where s.width != first.width || s.height != first.height {
            throw ImagingError.invalidArgument("slices of different sizes")
        }
        self.init(
            shape: GridShape(first.width, first.height, slices.count), geometry: geometry,
            labels: slices.flatMap(\.pixels))
    }

    public func slice(_ k: Int) -> Slice2D<UInt8> {
        let plane = shape.nx * shape.ny
        let sp = geometry.spacing
        return Slice2D(
            width: shape.nx, height: shape.ny,
            pixels: Array(labels[(k * plane)..<((k + 1) * plane)]), spacing: SIMD2(sp.x, sp.y))
    }

    public func slices() -> [Slice2D<UInt8>] { (0..<shape.nz).map(slice) }

    /// Voxel count per label value (index = label).
    public func histogram() -> [Int] {
        var h = [Int](repeating: 0, count: 256)
        for v in labels { h[Int(v)] += 1 }
        return h
    }

    /// The largest label value present.
    public var maxLabel: UInt8 { labels.max() ?? 0 }

    /// Throws unless every value is one of `0...maxClass`.
    public func validate(maxClass: UInt8 = 3) throws {
        let h = histogram()
        if let bad = (Int(maxClass) + 1..<256).first(where: { h[$0] > 0 }) {
            throw ImagingError.labelOutOfRange(value: bad, maxClass: Int(maxClass), count: h[bad])
        }
    }

    /// Throws unless this map lies on the grid of `image` (same sizes, same affine).
    public func validate(against image: Volume, tolerance: Double = 1e-4) throws {
        guard shape == image.shape.spatial else {
            throw ImagingError.gridMismatch(
                "label map is \(shape) but the image is \(image.shape.spatial)")
        }
        guard geometry.matches(image.geometry, tolerance: tolerance) else {
            let d = geometry.affine.maxAbsDifference(image.geometry.affine)
            throw ImagingError.gridMismatch(
                "label map affine differs from the image's by up to \(d) mm")
        }
    }

    /// A binary mask of one label.
    public func mask(_ label: UInt8) -> [Bool] { labels.map { $0 == label } }

    /// As a volume (uint8 storage) for writing.
    public var volume: Volume {
        Volume(shape: shape, geometry: geometry, data: .uint8(labels), descrip: "autosam labels")
    }
}
