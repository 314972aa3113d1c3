import CNIfTI
import Foundation

/// The NIfTI spatial header exactly as a file stored it, kept so that outputs derived from an
/// input (label maps) carry the input's qform and sform bit for bit.
public struct NIfTISpatialHeader: Equatable, Sendable, Codable {
    public var qformCode: Int32
    public var sformCode: Int32
    public var quaternB: Double, quaternC: Double, quaternD: Double
    public var qoffsetX: Double, qoffsetY: Double, qoffsetZ: Double
    public var qfac: Double
    /// pixdim[1...3] as stored.
    public var pixdim: [Double]
    /// The sform as stored, row-major 4x4 (last row 0 0 0 1).
    public var sform: Matrix4
    public var xyzUnits: Int32

    /// The qform affine (row-major), as nifti2_io computes it from the quaternion.
    public var qformAffine: Matrix4 {
        var out = [Double](repeating: 0, count: 16)
        asn_nifti_quatern_to_affine(
            quaternB, quaternC, quaternD, qoffsetX, qoffsetY, qoffsetZ,
            pixdim[0], pixdim[1], pixdim[2], qfac, &out)
        return Matrix4(rowMajor: out)
    }

    /// The affine a reader should use, by the precedence nibabel and most tools apply:
    /// the sform when its code is set, else the qform when its code is set, else the
    /// standard's "method 1" (scaling by pixdim, no rotation, origin at voxel 0).
    public var bestAffine: Matrix4 {
        if sformCode > 0 { return sform }
        if qformCode > 0 { return qformAffine }
        return Matrix4(rowMajor: [
            pixdim[0], 0, 0, 0, 0, pixdim[1], 0, 0, 0, 0, pixdim[2], 0, 0, 0, 0, 1,
        ])
    }

    /// A header for an affine built in code: qform (nearest rotation) and sform both set, with
    /// code 1 (scanner anatomical), units millimetres.
    public static func from(affine: Matrix4) -> NIfTISpatialHeader {
        var qb = 0.0, qc = 0.0, qd = 0.0, qx = 0.0, qy = 0.0, qz = 0.0
        var dx = 0.0, dy = 0.0, dz = 0.0, qfac = 0.0
        asn_nifti_affine_to_quatern(affine.m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac)
        return NIfTISpatialHeader(
            qformCode: 1, sformCode: 1, quaternB: qb, quaternC: qc, quaternD: qd,
            qoffsetX: qx, qoffsetY: qy, qoffsetZ: qz, qfac: qfac < 0 ? -1 : 1,
            pixdim: [dx, dy, dz], sform: affine, xyzUnits: 2)
    }
}

/// Where the voxels of a 3D grid sit in the world: the 4x4 affine from voxel indexes
/// (i, j, k) to world millimetres in the NIfTI convention (RAS+), with spacing, origin and
/// direction derived from it.
public struct VolumeGeometry: Equatable, Sendable, Codable {
    /// Voxel index -> world (mm, RAS+).
    public var affine: Matrix4
    /// The NIfTI transforms as read from (or to be written to) a file.
    public var nifti: NIfTISpatialHeader

    public init(affine: Matrix4) {
        self.affine = affine
        self.nifti = .from(affine: affine)
    }

    public init(nifti: NIfTISpatialHeader) {
        self.nifti = nifti
        self.affine = nifti.bestAffine
    }

    /// Builds an affine from spacing, origin (world position of voxel 0) and a direction
    /// matrix whose columns are the unit world directions of the i, j, k axes.
    public init(spacing: SIMD3<Double>, origin: SIMD3<Double>, direction: [SIMD3<Double>]) {
        precondition(direction.count == 3)
        var m = Matrix4.identity
        for c in 0..<3 {
            let col = direction[c].normalized * spacing[c]
            m[0, c] = col.x
            m[1, c] = col.y
            m[2, c] = col.z
        }
        m[0, 3] = origin.x
        m[1, 3] = origin.y
        m[2, 3] = origin.z
        self.init(affine: m)
    }

    /// Voxel spacing in mm along i, j, k (lengths of the affine's columns).
    public var spacing: SIMD3<Double> {
        SIMD3(affine.column3(0).length, affine.column3(1).length, affine.column3(2).length)
    }

    public var origin: SIMD3<Double> { affine.translation }

    /// Unit world directions of the i, j, k axes.
    public var direction: [SIMD3<Double>] { (0..<3).map { affine.column3($0).normalized } }

    /// Volume of one voxel in mm^3 (|det| of the 3x3 block).
    public var voxelVolume: Double { abs(affine.determinant3) }

    /// World position (mm) of a voxel index.
    public func world(_ ijk: SIMD3<Double>) -> SIMD3<Double> { affine.apply(ijk) }

    /// Whether two grids place voxels at the same world positions within `tolerance` mm.
    public func matches(_ other: VolumeGeometry, tolerance: Double = 1e-4) -> Bool {
        affine.maxAbsDifference(other.affine) <= tolerance
    }
}
