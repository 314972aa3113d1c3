import Foundation

/// How the images of a classic single-frame series form a 4D grid: slices ordered along the
/// slice normal (row x column direction), frames at each slice ordered by Trigger Time then
/// Instance Number. Building a layout checks everything the geometry relies on.
public struct DicomSeriesLayout: Sendable {
    public var seriesLabel: String
    public var rows: Int, columns: Int
    /// LPS unit vectors.
    public var rowDirection: SIMD3<Double>, columnDirection: SIMD3<Double>, normal: SIMD3<Double>
    /// Spacing between rows, then between columns (DICOM order), mm.
    public var pixelSpacing: SIMD2<Double>
    /// images[k][t]: slice k (along the normal), frame t.
    public var images: [[DicomHeader]]
    /// Image Position (Patient) of slice 0, and the step from one slice to the next (LPS).
    public var firstPosition: SIMD3<Double>
    public var sliceStep: SIMD3<Double>

    public var sliceCount: Int { images.count }
    public var frameCount: Int { images.first?.count ?? 0 }
    /// Distance between slice centres measured from the positions (not Slice Thickness).
    public var sliceSpacing: Double { sliceStep.length }
    /// "axial", "sagittal", "coronal", or nil for an oblique stack.
    public var pureOrientation: String? { DicomGeometry.pureOrientation(normal: normal) }

    /// The voxel-to-RAS grid: i = column, j = row, k = slice.
    public var geometry: VolumeGeometry {
        DicomGeometry.volumeGeometry(
            rowDirection: rowDirection, columnDirection: columnDirection, pixelSpacing: pixelSpacing,
            firstPosition: firstPosition, sliceStep: sliceStep)
    }

    // Tolerances for values that a scanner writes as decimal strings.
    static let directionTolerance = 1e-3
    static let spacingTolerance = 1e-3  // mm
    static let samePositionTolerance = 0.05  // mm, along the normal and in-plane

    /// Arranges a series, or throws the first problem found (naming a file or the series).
    public static func analyse(_ series: DicomSeries) throws -> DicomSeriesLayout {
        let name = series.label
        guard let first = series.images.first else { throw DicomError.inconsistentSeries(series: name, reason: "no images") }
        for h in series.images {
            if h.numberOfFrames > 1 && h.frameIndex == nil {
                throw DicomError.unsupported(path: h.path, reason: "a multi-frame image without per-frame functional groups")
            }
            if h.samplesPerPixel != 1 { throw DicomError.unsupported(path: h.path, reason: "colour images are not supported") }
            if h.rows <= 0 || h.columns <= 0 { throw DicomError.missingAttribute(path: h.path, attribute: "Rows/Columns") }
            if h.imagePosition == nil { throw DicomError.missingAttribute(path: h.location, attribute: "Image Position (Patient) (0020,0032)") }
            if h.imageOrientation == nil { throw DicomError.missingAttribute(path: h.location, attribute: "Image Orientation (Patient) (0020,0037)") }
            guard let s = h.pixelSpacing else { throw DicomError.missingAttribute(path: h.location, attribute: "Pixel Spacing (0028,0030)") }
            if !(s.x > 0 && s.y > 0) { throw DicomError.missingAttribute(path: h.location, attribute: "a positive Pixel Spacing (0028,0030)") }
        }
        let o = first.imageOrientation!, spacing = first.pixelSpacing!
        guard abs(o.row.length - 1) < 0.01, abs(o.column.length - 1) < 0.01, abs(o.row.dot(o.column)) < 0.01 else {
            throw DicomError.inconsistentSeries(series: name, reason: "Image Orientation (Patient) in \(first.path) is not two orthogonal unit vectors")
        }
        let row = o.row.normalized, col = o.column.normalized, normal = row.cross(col).normalized
        for h in series.images.dropFirst() {
            if h.rows != first.rows || h.columns != first.columns {
                throw DicomError.inconsistentSeries(
                    series: name, reason: "matrix \(h.columns)x\(h.rows) in \(h.path) but \(first.columns)x\(first.rows) in \(first.path) (two series under one Series Instance UID?)")
            }
            let ho = h.imageOrientation!
            let d = max((ho.row - o.row).abs().max(), (ho.column - o.column).abs().max())
            if d > directionTolerance {
                throw DicomError.inconsistentSeries(
                    series: name, reason: "Image Orientation (Patient) differs between \(first.location) and \(h.location) (two series under one Series Instance UID?)")
            }
            if (h.pixelSpacing! - spacing).abs().max() > spacingTolerance {
                throw DicomError.inconsistentSeries(series: name, reason: "Pixel Spacing differs between \(first.location) and \(h.location)")
            }
        }
        let slices = try groupBySlice(series.images, normal: normal, name: name)
        let frames = try slices.map { try orderFrames($0, name: name) }
        if let bad = frames.firstIndex(where: { $0.count != frames[0].count }) {
            throw DicomError.inconsistentSeries(
                series: name, reason: "slice \(bad) has \(frames[bad].count) image(s) but slice 0 has \(frames[0].count): frames are missing or two series are mixed")
        }
        let positions = frames.map { $0[0].imagePosition! }
        let step = try sliceStep(positions, normal: normal, first: first, name: name)
        return DicomSeriesLayout(
            seriesLabel: name, rows: first.rows, columns: first.columns, rowDirection: row, columnDirection: col,
            normal: normal, pixelSpacing: spacing, images: frames, firstPosition: positions[0], sliceStep: step)
    }

    /// Groups images whose positions along the normal agree, in increasing order.
    static func groupBySlice(_ images: [DicomHeader], normal: SIMD3<Double>, name: String) throws -> [[DicomHeader]] {
        let sorted = images.map { ($0.imagePosition!.dot(normal), $0) }.sorted { $0.0 < $1.0 }
        var groups: [[DicomHeader]] = []
        var last = -Double.infinity
        for (d, h) in sorted {
            if d - last > samePositionTolerance || groups.isEmpty { groups.append([h]) } else { groups[groups.count - 1].append(h) }
            last = d
        }
        for g in groups {
            let p0 = g[0].imagePosition!
            if let off = g.first(where: { ($0.imagePosition! - p0).length > samePositionTolerance }) {
                throw DicomError.inconsistentSeries(
                    series: name, reason: "\(g[0].location) and \(off.location) lie in the same plane but at different in-plane positions")
            }
        }
        return groups
    }

    /// Orders the images of one slice by Trigger Time, then Instance Number (then, for the
    /// frames of a multi-frame file, Temporal Position Index and frame index); two images of
    /// the same phase at one position are duplicates.
    static func orderFrames(_ images: [DicomHeader], name: String) throws -> [DicomHeader] {
        func key(_ h: DicomHeader) -> (Double, Int, Int, Int, String) {
            (h.triggerTime ?? -.infinity, h.instanceNumber ?? Int.min, h.temporalPositionIndex ?? Int.min, h.frameIndex ?? -1, h.path)
        }
        let ordered = images.sorted { key($0) < key($1) }
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            let sameTime = a.triggerTime.flatMap { ta in b.triggerTime.map { abs(ta - $0) < 1e-3 } }
            // Without trigger times, only distinct instance numbers (or frames) tell phases apart.
            let sameImage = a.instanceNumber == b.instanceNumber && a.frameIndex == b.frameIndex
            if sameTime ?? sameImage {
                let p = a.imagePosition!
                let when = a.triggerTime.map { String(format: " and trigger time %.1f ms", $0) } ?? ""
                throw DicomError.duplicatePosition(
                    series: name,
                    reason: String(format: "%@ and %@ share the position (%.2f, %.2f, %.2f) mm%@", a.location, b.location, p.x, p.y, p.z, when))
            }
        }
        return ordered
    }

    /// The step between consecutive slices, after checking even gaps and a straight stack.
    static func sliceStep(_ p: [SIMD3<Double>], normal: SIMD3<Double>, first: DicomHeader, name: String) throws -> SIMD3<Double> {
        guard p.count > 1 else {
            let t = first.spacingBetweenSlices ?? first.sliceThickness ?? 1
            return normal * (t > 0 ? t : 1)
        }
        let gaps = zip(p, p.dropFirst()).map { ($1 - $0).dot(normal) }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let tol = max(0.01, 0.01 * mean)
        if let bad = gaps.firstIndex(where: { abs($0 - mean) > tol }) {
            let list = gaps.map { String(format: "%.2f", $0) }.joined(separator: ", ")
            let hint = gaps.contains(where: { $0 > 1.5 * (gaps.min() ?? mean) }) ? " (a missing slice?)" : ""
            throw DicomError.inconsistentSpacing(
                series: name, reason: "gaps between slices are \(list) mm; slices \(bad) and \(bad + 1) are \(String(format: "%.2f", gaps[bad])) mm apart\(hint)")
        }
        let step = (p[p.count - 1] - p[0]) / Double(p.count - 1)
        for (k, pk) in p.enumerated() where (pk - (p[0] + step * Double(k))).length > tol {
            throw DicomError.inconsistentSeries(series: name, reason: "slice \(k) lies off the line through the other slice positions")
        }
        return step
    }
}

extension SIMD3 where Scalar == Double {
    func abs() -> SIMD3<Double> { SIMD3(Swift.abs(x), Swift.abs(y), Swift.abs(z)) }
}

extension SIMD2 where Scalar == Double {
    func abs() -> SIMD2<Double> { SIMD2(Swift.abs(x), Swift.abs(y)) }
}
