/// Surface distances between two binary masks, following `medpy.metric.binary` (`asd`, `assd`,
/// `hd`, `hd95`) as used in ACDC / AutoSAM evaluations:
///
/// - the surface of a mask is `mask XOR binary_erosion(mask)` with the 6-connected (face)
///   structuring element, voxels outside the grid counting as background, so foreground
///   voxels on the grid border are surface voxels;
/// - the directed distances from A to B are, for each surface voxel of A, the Euclidean
///   distance in mm (anisotropic spacing) to the nearest surface voxel of B;
/// - ASSD is the mean of the two directed means (not the mean of the pooled distances);
/// - HD95 is the 95th percentile, with numpy's default linear interpolation, of both directed
///   arrays concatenated; the Hausdorff distance is their maximum.
public struct SurfaceDistances: Sendable, Equatable {
    /// For each surface voxel of A (memory order), the distance in mm to B's surface.
    public var aToB: [Double]
    /// For each surface voxel of B (memory order), the distance in mm to A's surface.
    public var bToA: [Double]

    public init(aToB: [Double], bToA: [Double]) {
        precondition(!aToB.isEmpty && !bToA.isEmpty, "both directions need surface voxels")
        self.aToB = aToB
        self.bToA = bToA
    }

    /// Mean distance from A's surface to B's (medpy `asd(A, B)`).
    public var meanAToB: Double { Self.mean(aToB) }
    /// Mean distance from B's surface to A's (medpy `asd(B, A)`).
    public var meanBToA: Double { Self.mean(bToA) }

    /// Average symmetric surface distance: mean of the two directed means (medpy `assd`).
    public var assd: Double { (meanAToB + meanBToA) / 2 }

    /// 95th percentile of both directed arrays together (medpy `hd95`).
    public var hd95: Double { Self.percentile(aToB + bToA, 95) }

    /// Largest distance in either direction (medpy `hd`).
    public var hausdorff: Double { max(aToB.max()!, bToA.max()!) }

    /// Distances between the surfaces of masks `a` and `b` on a grid of `shape` with voxel
    /// `spacing` (mm along i, j, k). Nil when either mask is empty (medpy raises then).
    public static func compute(
        _ a: [Bool], _ b: [Bool], shape: GridShape, spacing: SIMD3<Double>
    ) -> SurfaceDistances? {
        precondition(a.count == shape.voxelsPerFrame && b.count == a.count, "mask size != \(shape)")
        // Work on the bounding box of A ∪ B: all surface voxels lie inside it, and outside it
        // both masks are background, just as outside the grid, so the surfaces and the
        // distances between them are unchanged.
        guard let box = BoundingBox(a, b, shape: shape) else { return nil }
        let ca = box.crop(a), cb = box.crop(b)
        let sa = surface(ca, shape: box.shape), sb = surface(cb, shape: box.shape)
        guard sa.contains(true), sb.contains(true) else { return nil }
        let toB = DistanceTransform.squaredDistances(features: sb, shape: box.shape, spacing: spacing)
        let toA = DistanceTransform.squaredDistances(features: sa, shape: box.shape, spacing: spacing)
        var aToB: [Double] = [], bToA: [Double] = []
        for idx in sa.indices {
            if sa[idx] { aToB.append(toB[idx].squareRoot()) }
            if sb[idx] { bToA.append(toA[idx].squareRoot()) }
        }
        return SurfaceDistances(aToB: aToB, bToA: bToA)
    }

    /// The surface voxels of `mask`: foreground voxels with at least one of their six face
    /// neighbours background or outside the grid (`mask XOR erosion(mask)`).
    public static func surface(_ mask: [Bool], shape: GridShape) -> [Bool] {
        let (nx, ny, nz) = (shape.nx, shape.ny, shape.nz)
        precondition(mask.count == nx * ny * nz, "mask size != \(shape)")
        var out = [Bool](repeating: false, count: mask.count)
        let plane = nx * ny
        mask.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                for k in 0..<nz {
                    for j in 0..<ny {
                        let row = k * plane + j * nx
                        for i in 0..<nx where m[row + i] {
                            let idx = row + i
                            let interior =
                                i > 0 && i < nx - 1 && j > 0 && j < ny - 1 && k > 0 && k < nz - 1
                                && m[idx - 1] && m[idx + 1] && m[idx - nx] && m[idx + nx]
                                && m[idx - plane] && m[idx + plane]
                            o[idx] = !interior
                        }
                    }
                }
            }
        }
        return out
    }

    /// Arithmetic mean (0 for an empty array).
    static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// The `q`-th percentile (0...100) with linear interpolation between closest ranks,
    /// as `numpy.percentile` computes it by default. `values` must not be empty.
    public static func percentile(_ values: [Double], _ q: Double) -> Double {
        precondition(!values.isEmpty, "percentile of no values")
        precondition(q >= 0 && q <= 100, "percentile \(q) outside 0...100")
        let sorted = values.sorted()
        let position = (q / 100) * Double(sorted.count - 1)
        let lo = Int(position.rounded(.down))
        let hi = min(lo + 1, sorted.count - 1)
        let t = position - Double(lo)
        let a = sorted[lo], b = sorted[hi]
        let diff = b - a
        // numpy's _lerp: interpolate from the nearer end.
        return t >= 0.5 ? b - diff * (1 - t) : a + diff * t
    }
}

/// The smallest box of voxels holding every foreground voxel of two masks.
struct BoundingBox {
    var lo: SIMD3<Int>, hi: SIMD3<Int>
    let full: GridShape

    init?(_ a: [Bool], _ b: [Bool], shape: GridShape) {
        var lo = SIMD3(Int.max, Int.max, Int.max), hi = SIMD3(-1, -1, -1)
        var idx = 0
        for k in 0..<shape.nz {
            for j in 0..<shape.ny {
                for i in 0..<shape.nx {
                    if a[idx] || b[idx] {
                        lo = pointwiseMin(lo, SIMD3(i, j, k))
                        hi = pointwiseMax(hi, SIMD3(i, j, k))
                    }
                    idx += 1
                }
            }
        }
        if hi.x < 0 { return nil }
        self.lo = lo
        self.hi = hi
        self.full = shape
    }

    var shape: GridShape { GridShape(hi.x - lo.x + 1, hi.y - lo.y + 1, hi.z - lo.z + 1) }

    func crop(_ mask: [Bool]) -> [Bool] {
        let s = shape
        var out = [Bool]()
        out.reserveCapacity(s.voxelsPerFrame)
        for k in lo.z...hi.z {
            for j in lo.y...hi.y {
                let row = (k * full.ny + j) * full.nx
                out.append(contentsOf: mask[(row + lo.x)...(row + hi.x)])
            }
        }
        return out
    }
}
