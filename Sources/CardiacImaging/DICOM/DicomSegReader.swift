import CDicom
import Foundation

/// A DICOM SEG read back: its segments, and each frame with its own position.
public struct DicomSegmentation: Sendable {
    public struct Frame: Sendable {
        public var segmentNumber: Int
        /// Image Position (Patient) of the frame's first pixel (LPS).
        public var position: SIMD3<Double>
        public var referencedSOPInstanceUID: String
        /// rows * columns values, 0 or 1 (column fastest).
        public var pixels: [UInt8]
    }

    public var rows: Int, columns: Int
    public var rowDirection: SIMD3<Double>, columnDirection: SIMD3<Double>
    /// Spacing between rows, then between columns (DICOM order).
    public var pixelSpacing: SIMD2<Double>
    public var frameOfReferenceUID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    /// Segment number (1-based) -> description; `labelValue` is the segment number.
    public var segments: [Int: DicomSegmentDescription]
    public var frames: [Frame]

    /// The grid the frames span: i = column, j = row, k = distinct frame positions along
    /// the normal, in the NIfTI world (RAS+).
    public func geometry() throws -> VolumeGeometry {
        let normal = rowDirection.cross(columnDirection).normalized
        let depths = frames.map { $0.position.dot(normal) }
        var distinct: [(Double, SIMD3<Double>)] = []
        for (d, f) in zip(depths, frames).sorted(by: { $0.0 < $1.0 }) {
            if let last = distinct.last, abs(d - last.0) < 0.05 { continue }
            distinct.append((d, f.position))
        }
        guard let first = distinct.first else { throw DicomError.invalidArgument("the SEG has no frames") }
        let step = distinct.count > 1
            ? (distinct[distinct.count - 1].1 - first.1) / Double(distinct.count - 1) : normal
        return DicomGeometry.volumeGeometry(
            rowDirection: rowDirection, columnDirection: columnDirection, pixelSpacing: pixelSpacing,
            firstPosition: first.1, sliceStep: step)
    }

    /// The label map on `geometry` (by default the SEG's own): every frame is placed by its
    /// position and its pixels take the segment number. A frame off the grid's slices, or two
    /// segments claiming one voxel, is an error.
    public func labelMap(on target: VolumeGeometry? = nil, slices: Int? = nil) throws -> LabelMap {
        let g = try target ?? geometry()
        let inverse = try g.affine.affineInverse()
        var nz = slices ?? 0
        var placed: [(k: Int, frame: Frame)] = []
        for f in frames {
            let ijk = inverse.apply(DicomGeometry.lpsToRAS(f.position))
            let k = Int(ijk.z.rounded())
            guard abs(ijk.x) < 1e-3, abs(ijk.y) < 1e-3, abs(ijk.z - Double(k)) < 1e-3, k >= 0 else {
                throw DicomError.gridMismatch(String(format: "a SEG frame at (%.3f, %.3f, %.3f) is not on a slice of the grid", f.position.x, f.position.y, f.position.z))
            }
            if slices == nil { nz = max(nz, k + 1) }
            placed.append((k, f))
        }
        let plane = rows * columns
        var labels = [UInt8](repeating: 0, count: plane * nz)
        for (k, f) in placed {
            guard k < nz else { throw DicomError.gridMismatch("a SEG frame lies beyond slice \(nz - 1)") }
            let value = UInt8(truncatingIfNeeded: f.segmentNumber)
            for p in 0..<plane where f.pixels[p] != 0 {
                let idx = k * plane + p
                if labels[idx] != 0 && labels[idx] != value {
                    throw DicomError.invalidArgument("segments \(labels[idx]) and \(value) overlap at slice \(k)")
                }
                labels[idx] = value
            }
        }
        return LabelMap(shape: GridShape(columns, rows, nz), geometry: g, labels: labels)
    }
}

/// Reads DICOM SEG files through dcmseg.
public enum DicomSegReader {
    public static func read(_ path: String) throws -> DicomSegmentation {
        var handle: OpaquePointer?
        var err = DicomFile.errorBuffer()
        let rc = asn_dicom_seg_open(path, &handle, &err, err.count)
        guard rc == 0, let handle else { throw DicomFile.error(rc, path: path, message: err) }
        defer { asn_dicom_seg_close(handle) }
        var info = asn_dicom_seg_info()
        guard asn_dicom_seg_get_info(handle, &info, &err, err.count) == 0 else {
            throw DicomFile.error(Int32(ASN_DICOM_ERR_INVALID), path: path, message: err)
        }
        guard info.has_orientation != 0, info.has_pixel_spacing != 0 else {
            throw DicomError.missingAttribute(path: path, attribute: "shared Plane Orientation / Pixel Measures")
        }
        var segments: [Int: DicomSegmentDescription] = [:]
        for n in 1...max(1, Int(info.segments)) where info.segments > 0 {
            var s = asn_dicom_segment()
            guard asn_dicom_seg_get_segment(handle, Int32(n), &s, &err, err.count) == 0 else { continue }
            segments[n] = DicomSegmentDescription(
                labelValue: UInt8(truncatingIfNeeded: n), label: cString(&s.label), description: cString(&s.description),
                category: DicomCode(cString(&s.category.value), cString(&s.category.scheme), cString(&s.category.meaning)),
                type: DicomCode(cString(&s.type.value), cString(&s.type.scheme), cString(&s.type.meaning)),
                cielab: [s.cielab.0, s.cielab.1, s.cielab.2])
        }
        let plane = Int(info.rows) * Int(info.columns)
        var frames: [DicomSegmentation.Frame] = []
        for i in 0..<Int(info.frames) {
            var f = asn_dicom_seg_frame()
            var pixels = [UInt8](repeating: 0, count: plane)
            let frc = asn_dicom_seg_get_frame(handle, Int32(i), &f, &pixels, plane, &err, err.count)
            guard frc == 0 else { throw DicomFile.error(frc, path: path, message: err) }
            guard f.has_position != 0 else { throw DicomError.missingAttribute(path: path, attribute: "Plane Position of frame \(i + 1)") }
            frames.append(.init(
                segmentNumber: Int(f.segment_number), position: SIMD3(f.position.0, f.position.1, f.position.2),
                referencedSOPInstanceUID: cString(&f.referenced_sop_instance_uid), pixels: pixels))
        }
        let o = info.orientation
        return DicomSegmentation(
            rows: Int(info.rows), columns: Int(info.columns),
            rowDirection: SIMD3(o.0, o.1, o.2), columnDirection: SIMD3(o.3, o.4, o.5),
            pixelSpacing: SIMD2(info.pixel_spacing.0, info.pixel_spacing.1),
            frameOfReferenceUID: cString(&info.frame_of_reference_uid), studyInstanceUID: cString(&info.study_instance_uid),
            seriesInstanceUID: cString(&info.series_instance_uid), segments: segments, frames: frames)
    }
}
