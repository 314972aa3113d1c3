import CDicom
import Foundation

/// Settings of the derived picture (the QC picture as DICOM) autosam writes.
public struct DicomPictureOptions: Sendable {
    public var seriesInstanceUID: String = DicomUID.make()
    public var seriesDescription = "autosam QC"
    public var seriesNumber = 9003
    public var instanceNumber = 1
    public var derivationDescription = "autosam QC picture: segmentation overlaid on the source images, with the measurements"

    public init() {}
}

/// Writes an 8-bit RGB picture as a Secondary Capture image in a DICOM cine's study (DCMTK):
/// patient and study from the cine's images, Image Type DERIVED\SECONDARY, burned-in text
/// declared, and the images it shows in the Source Image Sequence (with the frame number for a
/// multi-frame source). Atomic.
public enum DicomPictureWriter {
    /// `rgb`: width x height x 3 bytes, row-major. `shown`: (slice, frame) of the cine's
    /// images the picture shows (0-based).
    public static func write(
        rgb: [UInt8], width: Int, height: Int, of cine: DicomCine, shown: [(slice: Int, frame: Int)], to path: String,
        options: DicomPictureOptions = DicomPictureOptions()
    ) throws {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw DicomError.invalidArgument("the picture has \(rgb.count) bytes, not \(width) x \(height) x 3")
        }
        let shape = cine.volume.shape
        for s in shown where !(0..<shape.nz).contains(s.slice) || !(0..<shape.nt).contains(s.frame) {
            throw DicomError.invalidArgument("shown image (slice \(s.slice), frame \(s.frame)) is outside the cine")
        }
        // Each shown image once: an instance, and its frame for a multi-frame source.
        var seen = Set<String>()
        let sources = shown.map { cine.source(slice: $0.slice, frame: $0.frame) }
            .filter { seen.insert($0.sopInstanceUID + "#" + String($0.frameIndex ?? -1)).inserted }
        let strings = CStrings()
        defer { strings.free() }
        let classes = CBuffer(sources.map { Optional(strings.make($0.sopClassUID)) })
        let instances = CBuffer(sources.map { Optional(strings.make($0.sopInstanceUID)) })
        let frames = CBuffer(sources.map { Int32(($0.frameIndex ?? -1) + 1) })
        let pixels = CBuffer(rgb)
        defer { classes.free(); instances.free(); frames.free(); pixels.free() }
        var r = asn_dicom_sc_request()
        r.source_file = strings.make(cine.source(slice: 0, frame: 0).path)
        r.rows = Int32(height)
        r.columns = Int32(width)
        r.series_instance_uid = strings.make(options.seriesInstanceUID)
        r.series_description = strings.make(options.seriesDescription)
        r.series_number = Int32(options.seriesNumber)
        r.instance_number = Int32(options.instanceNumber)
        r.derivation_description = strings.make(options.derivationDescription)
        r.manufacturer = strings.make("autosam")
        r.software_version = strings.make(BuildInfo.version)
        r.source_count = Int32(sources.count)
        r.source_sop_class_uids = UnsafePointer(classes.pointer)
        r.source_sop_instance_uids = UnsafePointer(instances.pointer)
        r.source_frame_numbers = UnsafePointer(frames.pointer)
        try DicomFile.writeAtomically(path) { tmp, err, n in asn_dicom_write_sc(tmp, &r, pixels.pointer, err, n) }
    }
}
