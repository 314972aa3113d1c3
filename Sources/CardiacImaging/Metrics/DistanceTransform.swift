/// Exact Euclidean distance transforms on 3D grids with anisotropic voxel spacing.
///
/// The transform is separable: a squared distance is computed along i, then j, then k, each
/// pass taking the lower envelope of parabolas (Felzenszwalb and Huttenlocher, "Distance
/// Transforms of Sampled Functions", 2012) with the axis spacing as weight. The result is
/// exact (up to floating-point rounding) and linear in the number of voxels.
public enum DistanceTransform {
    /// Squared Euclidean distance, in mm^2, from each voxel to the nearest feature voxel
    /// (`features[idx] == true`), with voxel centres `spacing` mm apart along i, j, k.
    /// Feature voxels get 0; every voxel gets `.infinity` when there is no feature at all.
    /// Memory order is i fastest, then j, then k.
    public static func squaredDistances(
        features: [Bool], shape: GridShape, spacing: SIMD3<Double>
    ) -> [Double] {
        let (nx, ny, nz) = (shape.nx, shape.ny, shape.nz)
        precondition(features.count == nx * ny * nz, "feature count != \(shape)")
        precondition(spacing.x > 0 && spacing.y > 0 && spacing.z > 0, "spacing must be positive")
        let n = features.count
        var out = [Double](repeating: .infinity, count: n)
        if n == 0 { return out }
        let maxLen = max(nx, ny, nz)
        var line = [Double](repeating: 0, count: maxLen)
        var result = [Double](repeating: 0, count: maxLen)
        var sites = [Int](repeating: 0, count: maxLen)
        var bounds = [Double](repeating: 0, count: maxLen + 1)

        out.withUnsafeMutableBufferPointer { d in
            features.withUnsafeBufferPointer { f in
                // Pass 1 (i): distance to the nearest feature on each row, by two sweeps.
                let sx2 = spacing.x * spacing.x
                for row in 0..<(ny * nz) {
                    let base = row * nx
                    var last = -1
                    for i in 0..<nx {
                        if f[base + i] { last = i }
                        if last >= 0 {
                            let t = Double(i - last)
                            d[base + i] = t * t * sx2
                        }
                    }
                    last = -1
                    for i in stride(from: nx - 1, through: 0, by: -1) {
                        if f[base + i] { last = i }
                        if last >= 0 {
                            let t = Double(last - i)
                            let v = t * t * sx2
                            if v < d[base + i] { d[base + i] = v }
                        }
                    }
                }
            }
            line.withUnsafeMutableBufferPointer { lineBuf in
                result.withUnsafeMutableBufferPointer { resBuf in
                    sites.withUnsafeMutableBufferPointer { v in
                        bounds.withUnsafeMutableBufferPointer { z in
                            // Pass 2 (j): lines of stride nx, one per (i, k).
                            if ny > 1 {
                                for k in 0..<nz {
                                    for i in 0..<nx {
                                        let start = k * nx * ny + i
                                        transformLine(
                                            d, start: start, stride: nx, count: ny, spacing: spacing.y,
                                            line: lineBuf, result: resBuf, sites: v, bounds: z)
                                    }
                                }
                            }
                            // Pass 3 (k): lines of stride nx * ny, one per (i, j).
                            if nz > 1 {
                                let plane = nx * ny
                                for start in 0..<plane {
                                    transformLine(
                                        d, start: start, stride: plane, count: nz, spacing: spacing.z,
                                        line: lineBuf, result: resBuf, sites: v, bounds: z)
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Euclidean distance in mm to the nearest feature voxel (square root of
    /// `squaredDistances`).
    public static func distances(
        features: [Bool], shape: GridShape, spacing: SIMD3<Double>
    ) -> [Double] {
        var d = squaredDistances(features: features, shape: shape, spacing: spacing)
        for idx in d.indices { d[idx] = d[idx].squareRoot() }
        return d
    }

    /// One 1D pass in place: `d[start + q*stride] <- min_p (s*(q-p))^2 + d[start + p*stride]`.
    /// Infinite inputs are not sites; a line without finite inputs stays infinite.
    @inline(__always)
    private static func transformLine(
        _ d: UnsafeMutableBufferPointer<Double>, start: Int, stride: Int, count n: Int,
        spacing s: Double, line f: UnsafeMutableBufferPointer<Double>,
        result out: UnsafeMutableBufferPointer<Double>, sites v: UnsafeMutableBufferPointer<Int>,
        bounds z: UnsafeMutableBufferPointer<Double>
    ) {
        // Work in index units: g(p) = d(p) / s^2, so the envelope is of (q-p)^2 + g(p).
        let inv = 1 / (s * s)
        var anyFinite = false
        for q in 0..<n {
            let value = d[start + q * stride]
            if value.isFinite { anyFinite = true }
            f[q] = value * inv
        }
        if !anyFinite { return }
        var k = -1
        for q in 0..<n where f[q].isFinite {
            let fq = f[q] + Double(q * q)
            if k < 0 {
                k = 0
                v[0] = q
                z[0] = -.infinity
                z[1] = .infinity
                continue
            }
            var p = v[k]
            var cut = (fq - (f[p] + Double(p * p))) / Double(2 * (q - p))
            // z[0] is -infinity, so this stops at k == 0 at the latest.
            while cut <= z[k] {
                k -= 1
                p = v[k]
                cut = (fq - (f[p] + Double(p * p))) / Double(2 * (q - p))
            }
            k += 1
            v[k] = q
            z[k] = cut
            z[k + 1] = .infinity
        }
        let s2 = s * s
        var j = 0
        for q in 0..<n {
            let x = Double(q)
            while z[j + 1] < x { j += 1 }
            let t = Double(q - v[j])
            out[q] = t * t * s2 + d[start + v[j] * stride]
        }
        for q in 0..<n { d[start + q * stride] = out[q] }
    }
}
