import Foundation

/// DICOM patient coordinates (LPS: x to the patient's left, y posterior, z head) against the
/// NIfTI world autosam uses (RAS+): the two differ by the sign of x and y.
public enum DicomGeometry {
    /// An LPS point or direction in RAS (and back: the flip is its own inverse).
    @inline(__always) public static func lpsToRAS(_ v: SIMD3<Double>) -> SIMD3<Double> { SIMD3(-v.x, -v.y, v.z) }
    @inline(__always) public static func rasToLPS(_ v: SIMD3<Double>) -> SIMD3<Double> { SIMD3(-v.x, -v.y, v.z) }

    /// The voxel-to-RAS grid of a DICOM stack: i along the row direction (columns), j along
    /// the column direction (rows), k along `sliceStep` (from slice 0 to slice 1), origin at
    /// the first pixel of slice 0. Directions and positions are LPS.
    public static func volumeGeometry(
        rowDirection: SIMD3<Double>, columnDirection: SIMD3<Double>, pixelSpacing: SIMD2<Double>,
        firstPosition: SIMD3<Double>, sliceStep: SIMD3<Double>
    ) -> VolumeGeometry {
        // PixelSpacing is (between rows, between columns): i steps by the column spacing.
        let ci = lpsToRAS(rowDirection.normalized * pixelSpacing.y)
        let cj = lpsToRAS(columnDirection.normalized * pixelSpacing.x)
        let ck = lpsToRAS(sliceStep)
        let o = lpsToRAS(firstPosition)
        return VolumeGeometry(affine: Matrix4(rowMajor: [
            ci.x, cj.x, ck.x, o.x,
            ci.y, cj.y, ck.y, o.y,
            ci.z, cj.z, ck.z, o.z,
            0, 0, 0, 1,
        ]))
    }

    /// The DICOM description of slice k of a grid: Image Position (Patient) of its first
    /// pixel, Image Orientation (Patient) and Pixel Spacing (row spacing, column spacing).
    public static func slicePlane(_ g: VolumeGeometry, slice k: Int)
        -> (position: SIMD3<Double>, row: SIMD3<Double>, column: SIMD3<Double>, spacing: SIMD2<Double>)
    {
        let a = g.affine
        let position = rasToLPS(a.apply(SIMD3(0, 0, Double(k))))
        let ci = a.column3(0), cj = a.column3(1)
        return (position, rasToLPS(ci.normalized), rasToLPS(cj.normalized), SIMD2(cj.length, ci.length))
    }

    /// Whether a slice normal lies within `degrees` of a patient axis: the stack is axial,
    /// sagittal or coronal rather than oblique. Returns the plane's name, or nil if oblique.
    public static func pureOrientation(normal n: SIMD3<Double>, degrees: Double = 10) -> String? {
        let u = n.normalized
        let c = cos(degrees * Double.pi / 180)
        if abs(u.z) >= c { return "axial" }
        if abs(u.x) >= c { return "sagittal" }
        if abs(u.y) >= c { return "coronal" }
        return nil
    }
}

/// DICOM UIDs under the 2.25 root (ITU-T X.667: a UUID as one decimal integer).
public enum DicomUID {
    /// A fresh random UID.
    public static func make() -> String { from(uuid: UUID().uuid) }

    /// A UID derived deterministically from numbers (the phantom's, so the same seed gives
    /// the same files): two 64-bit SplitMix hashes of the parts form the 128-bit value.
    public static func derived(_ parts: UInt64...) -> String {
        var h1: UInt64 = 0x243F_6A88_85A3_08D3, h2: UInt64 = 0x1319_8A2E_0370_7344
        for p in parts {
            h1 = mix(h1 ^ p)
            h2 = mix(h2 &+ p &* 0x9E37_79B9_7F4A_7C15)
        }
        return decimal(hi: h1, lo: h2)
    }

    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func from(uuid u: uuid_t) -> String {
        let b = [u.0, u.1, u.2, u.3, u.4, u.5, u.6, u.7, u.8, u.9, u.10, u.11, u.12, u.13, u.14, u.15]
        let hi = b[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let lo = b[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return decimal(hi: hi, lo: lo)
    }

    /// "2.25." + the 128-bit value hi:lo in decimal (at most 39 digits, so 44 characters).
    static func decimal(hi: UInt64, lo: UInt64) -> String {
        var words = [UInt32(hi >> 32), UInt32(hi & 0xFFFF_FFFF), UInt32(lo >> 32), UInt32(lo & 0xFFFF_FFFF)]
        var digits: [UInt8] = []
        while words.contains(where: { $0 != 0 }) {
            var rem: UInt64 = 0
            for i in 0..<words.count {
                let cur = rem << 32 | UInt64(words[i])
                words[i] = UInt32(cur / 10)
                rem = cur % 10
            }
            digits.append(UInt8(rem))
        }
        let number = digits.isEmpty ? "0" : String(digits.reversed().map { Character(String($0)) })
        return "2.25." + number
    }
}

extension Matrix4 {
    /// The inverse of an affine matrix (3x3 block plus translation, last row 0 0 0 1).
    func affineInverse() throws -> Matrix4 {
        let d = determinant3
        guard abs(d) > 1e-12 else { throw DicomError.invalidArgument("singular affine") }
        let a = self
        func m(_ r: Int, _ c: Int) -> Double { a[r, c] }
        // Adjugate / determinant of the 3x3 block.
        var inv = [Double](repeating: 0, count: 16)
        inv[0] = (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) / d
        inv[1] = (m(0, 2) * m(2, 1) - m(0, 1) * m(2, 2)) / d
        inv[2] = (m(0, 1) * m(1, 2) - m(0, 2) * m(1, 1)) / d
        inv[4] = (m(1, 2) * m(2, 0) - m(1, 0) * m(2, 2)) / d
        inv[5] = (m(0, 0) * m(2, 2) - m(0, 2) * m(2, 0)) / d
        inv[6] = (m(0, 2) * m(1, 0) - m(0, 0) * m(1, 2)) / d
        inv[8] = (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0)) / d
        inv[9] = (m(0, 1) * m(2, 0) - m(0, 0) * m(2, 1)) / d
        inv[10] = (m(0, 0) * m(1, 1) - m(0, 1) * m(1, 0)) / d
        let t = translation
        for r in 0..<3 {
            inv[r * 4 + 3] = -(inv[r * 4] * t.x + inv[r * 4 + 1] * t.y + inv[r * 4 + 2] * t.z)
        }
        inv[15] = 1
        return Matrix4(rowMajor: inv)
    }
}
