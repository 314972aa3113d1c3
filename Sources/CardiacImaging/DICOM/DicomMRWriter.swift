import CDicom
import Foundation

/// One classic MR image to write (the phantom's DICOM output and test fixtures). Geometry is
/// in DICOM patient coordinates (LPS, mm). Optional attributes left nil are omitted, which
/// is how tests make bad input.
public struct DicomMRImage: Sendable {
    public var sopClassUID: String? = nil
    public var sopInstanceUID: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var frameOfReferenceUID: String
    public var patientID = ""
    public var patientName = ""
    public var patientSex = ""
    public var studyDate = "", studyTime = "", studyID = "", accessionNumber = "", studyDescription = ""
    public var seriesDescription = ""
    public var manufacturer = "autosam phantom"
    public var seriesNumber = 1
    public var instanceNumber = 1
    public var acquisitionNumber = 1
    public var rows: Int
    public var columns: Int
    public var imagePosition: SIMD3<Double>?
    public var imageOrientation: (row: SIMD3<Double>, column: SIMD3<Double>)?
    /// Spacing between rows, then between columns (DICOM order), mm.
    public var pixelSpacing: SIMD2<Double>?
    public var sliceThickness = 0.0
    public var spacingBetweenSlices = 0.0
    public var sliceLocation = 0.0
    public var rescale: (slope: Double, intercept: Double)? = nil
    public var triggerTime: Double? = nil
    public var cardiacNumberOfImages = 0
    public var heartRate = 0.0
    public var patientSizeM = 0.0
    public var patientWeightKg = 0.0
    public var repetitionTime = 3.2, echoTime = 1.4, flipAngle = 50.0, fieldStrength = 1.5
    /// Writes no Pixel Data (a non-image object, for tests).
    public var omitPixelData = false

    public init(
        sopInstanceUID: String, studyInstanceUID: String, seriesInstanceUID: String, frameOfReferenceUID: String,
        rows: Int, columns: Int
    ) {
        self.sopInstanceUID = sopInstanceUID
        self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID
        self.frameOfReferenceUID = frameOfReferenceUID
        self.rows = rows
        self.columns = columns
    }
}

/// Writes classic single-frame MR Image Storage files through CDicom.
public enum DicomMRWriter {
    /// Writes one image; `pixels` are the stored values (rows * columns, column fastest).
    /// The file is written atomically.
    public static func write(_ image: DicomMRImage, pixels: [UInt16], to path: String) throws {
        guard image.omitPixelData || pixels.count == image.rows * image.columns else {
            throw DicomError.invalidArgument("\(pixels.count) pixels for a \(image.columns)x\(image.rows) image")
        }
        let strings = CStrings()
        defer { strings.free() }
        var m = cImage(image, strings)
        try DicomFile.writeAtomically(path) { tmp, err, n in
            pixels.withUnsafeBufferPointer { px in asn_dicom_write_mr(tmp, &m, px.baseAddress, err, n) }
        }
    }

    /// Writes an Enhanced MR Image (one file, many frames): patient, study and series from
    /// `image`, each frame's geometry and phase from `frames`; `pixels` holds frames * rows *
    /// columns stored values. Rescale and orientation are shared (taken from frame 0).
    public static func writeEnhanced(
        _ image: DicomMRImage, frames: [DicomFrameAttributes], pixels: [UInt16], to path: String
    ) throws {
        guard !frames.isEmpty, pixels.count == image.rows * image.columns * frames.count else {
            throw DicomError.invalidArgument("\(pixels.count) pixels for \(frames.count) frames of \(image.columns)x\(image.rows)")
        }
        let strings = CStrings()
        defer { strings.free() }
        var m = cImage(image, strings)
        let attrs = frames.map { f -> asn_dicom_frame_attrs in
            var a = asn_dicom_frame_attrs()
            a.image_position = (f.imagePosition.x, f.imagePosition.y, f.imagePosition.z)
            a.has_image_position = 1
            let o = f.imageOrientation
            a.image_orientation = (o.row.x, o.row.y, o.row.z, o.column.x, o.column.y, o.column.z)
            a.has_image_orientation = 1
            a.pixel_spacing = (f.pixelSpacing.x, f.pixelSpacing.y)
            a.has_pixel_spacing = 1
            a.slice_thickness = f.sliceThickness
            a.has_slice_thickness = 1
            a.rescale_slope = f.rescaleSlope
            a.rescale_intercept = f.rescaleIntercept
            a.has_rescale = 1
            if let t = f.triggerTime {
                a.trigger_time = t
                a.has_trigger_time = 1
            }
            a.temporal_position_index = Int32(f.temporalPositionIndex)
            a.in_stack_position = Int32(f.inStackPosition)
            return a
        }
        try DicomFile.writeAtomically(path) { tmp, err, n in asn_dicom_write_enhanced_mr(tmp, &m, Int32(attrs.count), attrs, pixels, err, n) }
    }

    /// The C description of an image; its strings live as long as `strings`.
    static func cImage(_ image: DicomMRImage, _ strings: CStrings) -> asn_dicom_mr_image {
        var m = asn_dicom_mr_image()
        m.sop_class_uid = image.sopClassUID.map { strings.make($0) }
        m.sop_instance_uid = strings.make(image.sopInstanceUID)
        m.study_instance_uid = strings.make(image.studyInstanceUID)
        m.series_instance_uid = strings.make(image.seriesInstanceUID)
        m.frame_of_reference_uid = strings.make(image.frameOfReferenceUID)
        m.patient_id = strings.make(image.patientID)
        m.patient_name = strings.make(image.patientName)
        m.patient_sex = strings.make(image.patientSex)
        m.study_date = strings.make(image.studyDate)
        m.study_time = strings.make(image.studyTime)
        m.study_id = strings.make(image.studyID)
        m.accession_number = strings.make(image.accessionNumber)
        m.study_description = strings.make(image.studyDescription)
        m.series_description = strings.make(image.seriesDescription)
        m.manufacturer = strings.make(image.manufacturer)
        m.series_number = Int32(image.seriesNumber)
        m.instance_number = Int32(image.instanceNumber)
        m.acquisition_number = Int32(image.acquisitionNumber)
        m.rows = Int32(image.rows)
        m.columns = Int32(image.columns)
        if let p = image.imagePosition {
            m.image_position = (p.x, p.y, p.z)
            m.has_image_position = 1
        }
        if let o = image.imageOrientation {
            m.image_orientation = (o.row.x, o.row.y, o.row.z, o.column.x, o.column.y, o.column.z)
            m.has_image_orientation = 1
        }
        if let s = image.pixelSpacing {
            m.pixel_spacing = (s.x, s.y)
            m.has_pixel_spacing = 1
        }
        m.slice_thickness = image.sliceThickness
        m.spacing_between_slices = image.spacingBetweenSlices
        m.slice_location = image.sliceLocation
        if let r = image.rescale {
            m.rescale_slope = r.slope
            m.rescale_intercept = r.intercept
            m.has_rescale = 1
        }
        if let t = image.triggerTime {
            m.trigger_time = t
            m.has_trigger_time = 1
        }
        m.cardiac_number_of_images = Int32(image.cardiacNumberOfImages)
        m.heart_rate = image.heartRate
        m.patient_size = image.patientSizeM
        m.patient_weight = image.patientWeightKg
        m.repetition_time = image.repetitionTime
        m.echo_time = image.echoTime
        m.flip_angle = image.flipAngle
        m.magnetic_field_strength = image.fieldStrength
        m.omit_pixel_data = image.omitPixelData ? 1 : 0
        return m
    }
}

/// One frame of an Enhanced MR image: where it lies and which phase it shows.
public struct DicomFrameAttributes: Sendable {
    public var imagePosition: SIMD3<Double>
    public var imageOrientation: (row: SIMD3<Double>, column: SIMD3<Double>)
    /// Spacing between rows, then between columns (DICOM order), mm.
    public var pixelSpacing: SIMD2<Double>
    public var sliceThickness: Double
    public var rescaleSlope = 1.0, rescaleIntercept = 0.0
    public var triggerTime: Double?
    public var temporalPositionIndex: Int
    public var inStackPosition: Int

    public init(
        imagePosition: SIMD3<Double>, imageOrientation: (row: SIMD3<Double>, column: SIMD3<Double>), pixelSpacing: SIMD2<Double>,
        sliceThickness: Double, triggerTime: Double?, temporalPositionIndex: Int, inStackPosition: Int
    ) {
        self.imagePosition = imagePosition
        self.imageOrientation = imageOrientation
        self.pixelSpacing = pixelSpacing
        self.sliceThickness = sliceThickness
        self.triggerTime = triggerTime
        self.temporalPositionIndex = temporalPositionIndex
        self.inStackPosition = inStackPosition
    }
}

/// C strings that live until `free()`: for C structs holding `const char *` fields.
final class CStrings {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func make(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!
        pointers.append(p)
        return UnsafePointer(p)
    }

    func free() {
        for p in pointers { Foundation.free(p) }
        pointers.removeAll()
    }
}
