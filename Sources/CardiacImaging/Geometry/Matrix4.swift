import Foundation

/// A 4x4 double matrix, row-major: `m[r * 4 + c]`. Used for voxel-to-world affines.
public struct Matrix4: Equatable, Sendable, Codable, CustomStringConvertible {
    public var m: [Double]

    public init(rowMajor values: [Double]) {
        precondition(values.count == 16, "Matrix4 needs 16 values")
        m = values
    }

    public static let identity = Matrix4(rowMajor: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])

    public subscript(r: Int, c: Int) -> Double {
        get { m[r * 4 + c] }
        set { m[r * 4 + c] = newValue }
    }

    public static func * (a: Matrix4, b: Matrix4) -> Matrix4 {
        var out = [Double](repeating: 0, count: 16)
        for r in 0..<4 {
            for c in 0..<4 {
                var s = 0.0
                for k in 0..<4 { s += a.m[r * 4 + k] * b.m[k * 4 + c] }
                out[r * 4 + c] = s
            }
        }
        return Matrix4(rowMajor: out)
    }

    /// Applies the matrix to a point (homogeneous w = 1).
    public func apply(_ p: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(
            m[0] * p.x + m[1] * p.y + m[2] * p.z + m[3],
            m[4] * p.x + m[5] * p.y + m[6] * p.z + m[7],
            m[8] * p.x + m[9] * p.y + m[10] * p.z + m[11])
    }

    /// Column `c` of the upper-left 3x3 block.
    public func column3(_ c: Int) -> SIMD3<Double> { SIMD3(m[c], m[4 + c], m[8 + c]) }

    public var translation: SIMD3<Double> { SIMD3(m[3], m[7], m[11]) }

    /// Determinant of the upper-left 3x3 block.
    public var determinant3: Double {
        let a = m
        return a[0] * (a[5] * a[10] - a[6] * a[9]) - a[1] * (a[4] * a[10] - a[6] * a[8])
            + a[2] * (a[4] * a[9] - a[5] * a[8])
    }

    /// Largest absolute element-wise difference.
    public func maxAbsDifference(_ other: Matrix4) -> Double {
        zip(m, other.m).map { abs($0 - $1) }.max() ?? 0
    }

    public var description: String {
        (0..<4).map { r in (0..<4).map { String(format: "%.6g", self[r, $0]) }.joined(separator: " ") }
            .joined(separator: "; ")
    }
}

extension SIMD3 where Scalar == Double {
    public var length: Double { (x * x + y * y + z * z).squareRoot() }
    public func dot(_ o: SIMD3<Double>) -> Double { x * o.x + y * o.y + z * o.z }
    public func cross(_ o: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(y * o.z - z * o.y, z * o.x - x * o.z, x * o.y - y * o.x)
    }
    public var normalized: SIMD3<Double> { self / length }
}
