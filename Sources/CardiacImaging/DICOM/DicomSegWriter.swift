import CDicom
import Foundation

/// A coded concept (Code Value, Coding Scheme Designator, Code Meaning).
public struct DicomCode: Codable, Equatable, Sendable {
    public var value: String
    public var scheme: String
    public var meaning: String

    public init(_ value: String, _ scheme: String, _ meaning: String) {
        self.value = value
        self.scheme = scheme
        self.meaning = meaning
    }
}

/// One segment of a DICOM SEG: which label value it takes from the label map, and what it is.
public struct DicomSegmentDescription: Codable, Equatable, Sendable {
    public var labelValue: UInt8
    public var label: String
    public var description: String
    public var category: DicomCode
    public var type: DicomCode
    /// Recommended display colour, DICOM CIELab (each 0...65535).
    public var cielab: [UInt16]

    public init(labelValue: UInt8, label: String, description: String, category: DicomCode, type: DicomCode, cielab: [UInt16]) {
        self.labelValue = labelValue
        self.label = label
        self.description = description
        self.category = category
        self.type = type
        self.cielab = cielab
    }
}

/// The three ACDC structures as SEG segments, coded with SNOMED CT as DICOM PS3.16 lists
/// them (see docs/DICOM.md): category CID 7150 "Anatomical Structure"; types from CID 7152
/// (Cardiac Structure Segmentation Types) for the ventricles and the left-ventricular
/// myocardium concept.
public enum CardiacSegments {
    public static let anatomicalStructure = DicomCode("91723000", "SCT", "Anatomical Structure")
    public static let rv = DicomSegmentDescription(
        labelValue: 1, label: "RV", description: "Right ventricle cavity", category: anatomicalStructure,
        type: DicomCode("53085002", "SCT", "Right ventricle"), cielab: [33644, 36596, 18297])
    public static let myo = DicomSegmentDescription(
        labelValue: 2, label: "Myo", description: "Left ventricle myocardium", category: anatomicalStructure,
        type: DicomCode("49848007", "SCT", "Left ventricle myocardium"), cielab: [44830, 18438, 43205])
    public static let lv = DicomSegmentDescription(
        labelValue: 3, label: "LV", description: "Left ventricle cavity (blood pool)", category: anatomicalStructure,
        type: DicomCode("87878005", "SCT", "Left ventricle"), cielab: [33044, 48661, 42537])
    public static let all = [rv, myo, lv]
}

/// Settings of the SEG objects autosam writes.
public struct DicomSegOptions: Sendable {
    /// Share one series UID between the ED and ES SEGs of a study.
    public var seriesInstanceUID: String = DicomUID.make()
    public var seriesDescription = "autosam segmentation"
    public var seriesNumber = 9001
    public var instanceNumber = 1
    public var contentLabel = "AUTOSAM"
    public var contentDescription = "RV, LV myocardium and LV cavity"
    public var contentCreator = "autosam^"
    public var algorithmName = "autosam"
    public var algorithmVersion = BuildInfo.version
    public var segments = CardiacSegments.all

    public init() {}
}

/// Writes DICOM SEG objects that reference a DICOM cine's source images.
public enum DicomSegWriter {
    /// Writes the segmentation of frame `t` (0-based) of `cine`: one segment per structure,
    /// one frame per segment and slice, each frame placed by its own Plane Position and
    /// referencing the source image of that slice and phase; same Frame of Reference. The
    /// label map must lie on the cine's grid. The file is written atomically.
    public static func write(
        _ labels: LabelMap, frame t: Int, of cine: DicomCine, to path: String, options: DicomSegOptions = DicomSegOptions()
    ) throws {
        let shape = cine.volume.shape
        guard t >= 0 && t < shape.nt else { throw DicomError.invalidArgument("frame \(t) outside 0..<\(shape.nt)") }
        guard labels.shape == shape.spatial else {
            throw DicomError.gridMismatch("label map is \(labels.shape) but the series is \(shape.spatial)")
        }
        guard labels.geometry.matches(cine.volume.geometry, tolerance: 1e-4) else {
            let d = labels.geometry.affine.maxAbsDifference(cine.volume.geometry.affine)
            throw DicomError.gridMismatch("label map affine differs from the series' by up to \(d) mm")
        }
        let allowed = Set(options.segments.map(\.labelValue)).union([0])
        if let bad = labels.labels.first(where: { !allowed.contains($0) }) {
            throw DicomError.invalidArgument("label value \(bad) has no segment")
        }
        let g = labels.geometry
        let sources = (0..<shape.nz).map { cine.source(slice: $0, frame: t) }
        var positions: [Double] = []
        for k in 0..<shape.nz {
            let p = DicomGeometry.slicePlane(g, slice: k).position
            positions += [p.x, p.y, p.z]
        }
        let plane0 = DicomGeometry.slicePlane(g, slice: 0)
        let strings = CStrings()
        defer { strings.free() }
        let uids = sources.map { Optional(strings.make($0.sopInstanceUID)) }
        let frameNumbers = sources.map { Int32(($0.frameIndex ?? -1) + 1) }  // 0: a single-frame source
        let segments = options.segments.map { d -> asn_dicom_segment in
            var s = asn_dicom_segment()
            s.label_value = d.labelValue
            setCString(&s.label, d.label)
            setCString(&s.description, d.description)
            setCString(&s.category.value, d.category.value)
            setCString(&s.category.scheme, d.category.scheme)
            setCString(&s.category.meaning, d.category.meaning)
            setCString(&s.type.value, d.type.value)
            setCString(&s.type.scheme, d.type.scheme)
            setCString(&s.type.meaning, d.type.meaning)
            if d.cielab.count == 3 { s.cielab = (d.cielab[0], d.cielab[1], d.cielab[2]) }
            return s
        }
        var r = asn_dicom_seg_request()
        r.rows = Int32(shape.ny)
        r.columns = Int32(shape.nx)
        r.slices = Int32(shape.nz)
        r.source_file = strings.make(sources[0].path)
        r.source_sop_class_uid = strings.make(sources[0].sopClassUID)
        r.source_series_instance_uid = strings.make(sources[0].seriesInstanceUID)
        r.orientation = (plane0.row.x, plane0.row.y, plane0.row.z, plane0.column.x, plane0.column.y, plane0.column.z)
        r.pixel_spacing = (plane0.spacing.x, plane0.spacing.y)
        r.spacing_between_slices = g.spacing.z
        r.slice_thickness = sources[0].sliceThickness ?? g.spacing.z
        r.segment_count = Int32(segments.count)
        r.series_instance_uid = strings.make(options.seriesInstanceUID)
        r.series_description = strings.make(options.seriesDescription)
        r.series_number = Int32(options.seriesNumber)
        r.instance_number = Int32(options.instanceNumber)
        r.content_label = strings.make(options.contentLabel)
        r.content_description = strings.make(options.contentDescription)
        r.content_creator = strings.make(options.contentCreator)
        r.manufacturer = strings.make("autosam")
        r.model_name = strings.make("autosam")
        r.software_version = strings.make(BuildInfo.version)
        r.algorithm_name = strings.make(options.algorithmName)
        r.algorithm_version = strings.make(options.algorithmVersion)
        // Stable C buffers for the request's pointer fields, freed on return.
        let uidBuffer = CBuffer(uids), frameBuffer = CBuffer(frameNumbers), positionBuffer = CBuffer(positions)
        let segmentBuffer = CBuffer(segments), labelBuffer = CBuffer(labels.labels)
        defer { uidBuffer.free(); frameBuffer.free(); positionBuffer.free(); segmentBuffer.free(); labelBuffer.free() }
        r.source_sop_instance_uids = UnsafePointer(uidBuffer.pointer)
        r.source_frame_numbers = UnsafePointer(frameBuffer.pointer)
        r.positions = UnsafePointer(positionBuffer.pointer)
        r.segments = UnsafePointer(segmentBuffer.pointer)
        try DicomFile.writeAtomically(path) { tmp, err, n in asn_dicom_write_seg(tmp, &r, labelBuffer.pointer, err, n) }
    }
}

/// A copy of an array in manually managed memory, for C structs that hold pointers.
final class CBuffer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    private let count: Int

    init(_ values: [T]) {
        count = values.count
        pointer = .allocate(capacity: max(1, values.count))
        pointer.initialize(from: values, count: values.count)
    }

    func free() {
        pointer.deinitialize(count: count)
        pointer.deallocate()
    }
}
