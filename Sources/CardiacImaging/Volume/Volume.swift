/// Sizes of a 3D or 4D voxel grid. `nt` is 1 for a 3D volume; i is fastest in memory, then
/// j, k and t (the NIfTI order).
public struct GridShape: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var nx: Int, ny: Int, nz: Int, nt: Int

    public init(_ nx: Int, _ ny: Int, _ nz: Int, _ nt: Int = 1) {
        self.nx = nx
        self.ny = ny
        self.nz = nz
        self.nt = nt
    }

    public var voxelsPerFrame: Int { nx * ny * nz }
    public var count: Int { voxelsPerFrame * nt }
    public var spatial: GridShape { GridShape(nx, ny, nz) }
    public var description: String { nt > 1 ? "\(nx)x\(ny)x\(nz)x\(nt)" : "\(nx)x\(ny)x\(nz)" }
}

/// Cine timing of a 4D volume: the time between frames as the file stores it.
public struct FrameTiming: Equatable, Sendable, Codable {
    /// Time between frames, in milliseconds (0 when unknown).
    public var frameInterval: Double
    /// Time of the first frame, in milliseconds.
    public var offset: Double

    public init(frameInterval: Double, offset: Double = 0) {
        self.frameInterval = frameInterval
        self.offset = offset
    }

    /// Time of frame `t` (0-based) in milliseconds.
    public func time(ofFrame t: Int) -> Double { offset + Double(t) * frameInterval }
}

/// A 3D or 4D image with its geometry: the voxels as stored plus their scaling, where they sit
/// in the world, and for cine series the frame timing.
public struct Volume: Sendable {
    public var shape: GridShape
    public var geometry: VolumeGeometry
    public var data: VoxelData
    /// NIfTI scl_slope / scl_inter (slope 0: none).
    public var slope: Double
    public var intercept: Double
    public var timing: FrameTiming?
    /// 1 or 2: the NIfTI version the volume came from or will be written as.
    public var niftiVersion: Int
    public var descrip: String

    public init(
        shape: GridShape, geometry: VolumeGeometry, data: VoxelData, slope: Double = 1,
        intercept: Double = 0, timing: FrameTiming? = nil, niftiVersion: Int = 1,
        descrip: String = ""
    ) {
        precondition(data.count == shape.count, "voxel count \(data.count) != shape \(shape)")
        self.shape = shape
        self.geometry = geometry
        self.data = data
        self.slope = slope
        self.intercept = intercept
        self.timing = timing
        self.niftiVersion = niftiVersion
        self.descrip = descrip
    }

    /// A float32 volume.
    public init(shape: GridShape, geometry: VolumeGeometry, floats: [Float], timing: FrameTiming? = nil) {
        self.init(shape: shape, geometry: geometry, data: .float32(floats), timing: timing)
    }

    public var isCine: Bool { shape.nt > 1 }

    /// Physical voxel values (scaling applied), all frames.
    public func floats() -> [Float] { data.floats(slope: slope, intercept: intercept) }

    /// Physical values of a range of voxels (in memory order).
    public func floats(range: Range<Int>) -> [Float] {
        data.floats(slope: slope, intercept: intercept, range: range)
    }

    /// One frame (0-based) as a 3D float volume with the same geometry.
    public func frame(_ t: Int) throws -> Volume {
        guard t >= 0 && t < shape.nt else {
            throw ImagingError.invalidArgument("frame \(t) outside 0..<\(shape.nt)")
        }
        let n = shape.voxelsPerFrame
        return Volume(shape: shape.spatial, geometry: geometry, floats: floats(range: (t * n)..<((t + 1) * n)))
    }

    /// The in-plane image of slice `k` of frame `t`: nx * ny values, i fastest.
    public func slice(_ k: Int, frame t: Int = 0) throws -> Slice2D<Float> {
        guard k >= 0 && k < shape.nz else {
            throw ImagingError.invalidArgument("slice \(k) outside 0..<\(shape.nz)")
        }
        guard t >= 0 && t < shape.nt else {
            throw ImagingError.invalidArgument("frame \(t) outside 0..<\(shape.nt)")
        }
        let plane = shape.nx * shape.ny
        let start = t * shape.voxelsPerFrame + k * plane
        let values = floats(range: start..<(start + plane))
        let sp = geometry.spacing
        return Slice2D(width: shape.nx, height: shape.ny, pixels: values, spacing: SIMD2(sp.x, sp.y))
    }

    /// All slices of one frame, in k order.
    public func slices(frame t: Int = 0) throws -> [Slice2D<Float>] {
        try (0..<shape.nz).map { try slice($0, frame: t) }
    }
}

/// One in-plane slice: width (i) by height (j) pixels, i fastest.
public struct Slice2D<T: Sendable>: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [T]
    /// Pixel spacing in mm along i and j.
    public var spacing: SIMD2<Double>

    public init(width: Int, height: Int, pixels: [T], spacing: SIMD2<Double>) {
        precondition(pixels.count == width * height)
        self.width = width
        self.height = height
        self.pixels = pixels
        self.spacing = spacing
    }

    public subscript(i: Int, j: Int) -> T {
        get { pixels[j * width + i] }
        set { pixels[j * width + i] = newValue }
    }
}
