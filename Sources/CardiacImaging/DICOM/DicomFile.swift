import CDicom
import Foundation

/// The attributes of one DICOM file that autosam uses, read without its pixel data.
/// Positions and directions are DICOM patient coordinates (LPS, mm) as stored.
public struct DicomHeader: Sendable, Equatable {
    public var path: String
    public var sopClassUID: String
    public var sopInstanceUID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var frameOfReferenceUID: String
    public var transferSyntaxUID: String
    public var modality: String
    public var seriesDescription: String
    public var manufacturer: String
    public var photometric: String
    public var seriesNumber: Int?
    public var instanceNumber: Int?
    public var rows: Int, columns: Int
    public var bitsAllocated: Int, samplesPerPixel: Int, numberOfFrames: Int
    public var hasPixelData: Bool
    public var imagePosition: SIMD3<Double>?
    /// Row direction (along a row: increasing column index), then column direction.
    public var imageOrientation: (row: SIMD3<Double>, column: SIMD3<Double>)?
    /// Spacing between rows, then between columns (DICOM order), mm.
    public var pixelSpacing: SIMD2<Double>?
    public var sliceThickness: Double?
    public var spacingBetweenSlices: Double?
    public var rescaleSlope: Double, rescaleIntercept: Double
    public var triggerTime: Double?
    public var cardiacNumberOfImages: Int?
    public var heartRate: Double?
    /// For one frame of a multi-frame (enhanced) image: its index in the file (0-based) and
    /// its Temporal Position Index; nil for classic single-frame images.
    public var frameIndex: Int?
    public var temporalPositionIndex: Int?
    // Patient and study attributes: carried into DicomStudyInfo, never logged.
    public var patientID: String
    public var patientName: String
    public var accessionNumber: String
    public var studyID: String
    public var studyDate: String
    public var studyDescription: String
    public var patientSize: Double?
    public var patientWeight: Double?

    public static func == (a: DicomHeader, b: DicomHeader) -> Bool {
        a.path == b.path && a.sopInstanceUID == b.sopInstanceUID && a.frameIndex == b.frameIndex
    }

    /// Frame `index` of a multi-frame image: the file's attributes with the frame's own
    /// geometry, rescale and trigger time.
    func frame(_ index: Int, _ a: asn_dicom_frame_attrs) -> DicomHeader {
        var h = self
        h.frameIndex = index
        let p = a.image_position, o = a.image_orientation, s = a.pixel_spacing
        h.imagePosition = a.has_image_position != 0 ? SIMD3(p.0, p.1, p.2) : nil
        h.imageOrientation = a.has_image_orientation != 0 ? (SIMD3(o.0, o.1, o.2), SIMD3(o.3, o.4, o.5)) : nil
        h.pixelSpacing = a.has_pixel_spacing != 0 ? SIMD2(s.0, s.1) : nil
        if a.has_slice_thickness != 0 { h.sliceThickness = a.slice_thickness }
        if a.has_rescale != 0 {
            h.rescaleSlope = a.rescale_slope
            h.rescaleIntercept = a.rescale_intercept
        }
        h.triggerTime = a.has_trigger_time != 0 ? a.trigger_time : nil
        h.temporalPositionIndex = a.temporal_position_index > 0 ? Int(a.temporal_position_index) : nil
        return h
    }

    /// A name for messages: the path, with the frame number for a frame of a multi-frame file.
    public var location: String { frameIndex.map { "\(path) (frame \($0 + 1))" } ?? path }

    init(path: String, _ h: asn_dicom_header) {
        self.path = path
        var c = h
        sopClassUID = cString(&c.sop_class_uid)
        sopInstanceUID = cString(&c.sop_instance_uid)
        studyInstanceUID = cString(&c.study_instance_uid)
        seriesInstanceUID = cString(&c.series_instance_uid)
        frameOfReferenceUID = cString(&c.frame_of_reference_uid)
        transferSyntaxUID = cString(&c.transfer_syntax_uid)
        modality = cString(&c.modality)
        seriesDescription = cString(&c.series_description)
        manufacturer = cString(&c.manufacturer)
        photometric = cString(&c.photometric)
        patientID = cString(&c.patient_id)
        patientName = cString(&c.patient_name)
        accessionNumber = cString(&c.accession_number)
        studyID = cString(&c.study_id)
        studyDate = cString(&c.study_date)
        studyDescription = cString(&c.study_description)
        seriesNumber = h.has_series_number != 0 ? Int(h.series_number) : nil
        instanceNumber = h.has_instance_number != 0 ? Int(h.instance_number) : nil
        rows = Int(h.rows)
        columns = Int(h.columns)
        bitsAllocated = Int(h.bits_allocated)
        samplesPerPixel = Int(h.samples_per_pixel)
        numberOfFrames = Int(h.number_of_frames)
        hasPixelData = h.has_pixel_data != 0
        let p = h.image_position, o = h.image_orientation, s = h.pixel_spacing
        imagePosition = h.has_image_position != 0 ? SIMD3(p.0, p.1, p.2) : nil
        imageOrientation = h.has_image_orientation != 0 ? (SIMD3(o.0, o.1, o.2), SIMD3(o.3, o.4, o.5)) : nil
        pixelSpacing = h.has_pixel_spacing != 0 ? SIMD2(s.0, s.1) : nil
        sliceThickness = h.has_slice_thickness != 0 ? h.slice_thickness : nil
        spacingBetweenSlices = h.has_spacing_between_slices != 0 ? h.spacing_between_slices : nil
        rescaleSlope = h.rescale_slope
        rescaleIntercept = h.rescale_intercept
        triggerTime = h.has_trigger_time != 0 ? h.trigger_time : nil
        cardiacNumberOfImages = h.cardiac_number_of_images > 0 ? Int(h.cardiac_number_of_images) : nil
        heartRate = h.has_heart_rate != 0 ? h.heart_rate : nil
        patientSize = h.has_patient_size != 0 ? h.patient_size : nil
        patientWeight = h.has_patient_weight != 0 ? h.patient_weight : nil
    }

    /// The slice normal (row x column direction), unit length.
    public var normal: SIMD3<Double>? {
        guard let o = imageOrientation else { return nil }
        let n = o.row.cross(o.column)
        return n.length > 0 ? n.normalized : nil
    }

    /// What kind of object this is, in words (for errors).
    public var kind: String { DicomSOPClass.name(sopClassUID) }

    /// Whether this is an image this reader can place in a volume (pixel data, not a SEG,
    /// SR or other non-image class).
    public var isImage: Bool { hasPixelData && !DicomSOPClass.nonImage.contains(sopClassUID) }
}

/// SOP Class UIDs the reader names or refuses.
public enum DicomSOPClass {
    public static let mrImage = "1.2.840.10008.5.1.4.1.1.4"
    public static let enhancedMRImage = "1.2.840.10008.5.1.4.1.1.4.1"
    public static let segmentation = "1.2.840.10008.5.1.4.1.1.66.4"

    static let names: [String: String] = [
        mrImage: "MR Image", enhancedMRImage: "Enhanced MR Image",
        "1.2.840.10008.5.1.4.1.1.2": "CT Image", "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
        segmentation: "Segmentation",
        "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR", "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
        "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR", "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
        "1.2.840.10008.5.1.4.1.1.481.3": "RT Structure Set", "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
        "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection",
    ]
    /// Classes that may carry pixel data but are not images of the patient to segment.
    static let nonImage: Set<String> = [segmentation, "1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.104.1"]

    public static func name(_ uid: String) -> String {
        if let n = names[uid] { return n }
        return uid.isEmpty ? "DICOM object without SOP Class" : "SOP Class \(uid)"
    }
}

/// Reads single DICOM files through CDicom.
public enum DicomFile {
    static func errorBuffer() -> [CChar] { [CChar](repeating: 0, count: 1024) }

    /// Runs a CDicom writer (`write(temporaryPath, errorBuffer, errorBufferSize)` returning its
    /// code) into a temporary file that replaces `path` only when it succeeds; a failure is
    /// the writer's error naming `path`.
    static func writeAtomically(_ path: String, _ write: (String, UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        try AtomicFile.write(to: path) { tmp in
            var err = errorBuffer()
            let rc = err.withUnsafeMutableBufferPointer { write(tmp, $0.baseAddress!, $0.count) }
            guard rc == 0 else { throw error(rc, path: path, message: err) }
        }
    }

    /// Maps a CDicom return code to a DicomError naming the file.
    static func error(_ rc: Int32, path: String, message: [CChar]) -> DicomError {
        let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        switch Int(rc) {
        case ASN_DICOM_ERR_NOT_DICOM: return .notDicom(path: path, reason: text)
        case ASN_DICOM_ERR_TRUNCATED: return .truncated(path: path, reason: text)
        case ASN_DICOM_ERR_UNSUPPORTED, ASN_DICOM_ERR_NO_PIXELS: return .unsupported(path: path, reason: text)
        case ASN_DICOM_ERR_WRITE: return .writeFailed(path: path, reason: text)
        default: return .readFailed(path: path, reason: text)
        }
    }

    /// The header of one file (its pixel data is checked to be complete but not kept).
    public static func readHeader(_ path: String) throws -> DicomHeader {
        var h = asn_dicom_header()
        var err = errorBuffer()
        let rc = asn_dicom_read_header(path, &h, &err, err.count)
        guard rc == 0 else { throw error(rc, path: path, message: err) }
        return DicomHeader(path: path, h)
    }

    /// The headers of a file: one for a classic image, one per frame for a multi-frame image
    /// with functional groups (Enhanced MR).
    public static func readHeaders(_ path: String) throws -> [DicomHeader] {
        let h = try readHeader(path)
        guard h.numberOfFrames > 1, h.isImage else { return [h] }
        var n: Int32 = 0
        var attrs = [asn_dicom_frame_attrs](repeating: asn_dicom_frame_attrs(), count: h.numberOfFrames)
        var err = errorBuffer()
        let rc = asn_dicom_read_frame_attrs(path, &attrs, attrs.count, &n, &err, err.count)
        guard rc == 0 else { throw error(rc, path: path, message: err) }
        return attrs.enumerated().map { h.frame($0.offset, $0.element) }
    }

    /// The stored pixel values of an image (all frames: frames * rows * columns, column
    /// fastest), without rescaling.
    public static func readPixels(_ header: DicomHeader) throws -> [Int32] {
        guard header.isImage else { throw DicomError.notAnImage(path: header.path, kind: header.kind) }
        let n = header.rows * header.columns * max(1, header.numberOfFrames)
        guard n > 0 else { throw DicomError.missingAttribute(path: header.path, attribute: "Rows/Columns") }
        // Rows, Columns and Number of Frames are checked against the file before anything is
        // allocated: native pixel data must be in the file; compressed data cannot expand more
        // than 4096-fold (a 684-byte file claiming 4 GiB of pixels was allocated before).
        let fileSize = ((try? FileManager.default.attributesOfItem(atPath: header.path)[.size]) as? NSNumber)?.intValue ?? 0
        let needed = n.multipliedReportingOverflow(by: max(1, header.bitsAllocated / 8))
        let native = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"].contains(header.transferSyntaxUID)
        let limit = native ? fileSize : fileSize.multipliedReportingOverflow(by: 4096).partialValue
        guard !needed.overflow, needed.partialValue <= limit else {
            throw DicomError.readFailed(
                path: header.path,
                reason: "\(header.rows) x \(header.columns) pixels x \(max(1, header.numberOfFrames)) frames cannot fit in a file of \(fileSize) bytes")
        }
        var out = [Int32](repeating: 0, count: n)
        var err = errorBuffer()
        let rc = asn_dicom_read_pixels(header.path, &out, n, &err, err.count)
        guard rc == 0 else { throw error(rc, path: header.path, message: err) }
        return out
    }
}

/// A fixed-size C char array (imported as a tuple) as a Swift string.
func cString<T>(_ tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

/// Writes a Swift string into a fixed-size C char array (truncated, NUL-terminated).
func setCString<T>(_ tuple: inout T, _ value: String) {
    withUnsafeMutableBytes(of: &tuple) { raw in
        let bytes = Array(value.utf8.prefix(raw.count - 1))
        for i in 0..<raw.count { raw[i] = i < bytes.count ? bytes[i] : 0 }
    }
}
