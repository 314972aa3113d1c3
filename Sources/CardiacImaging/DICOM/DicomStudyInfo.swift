import Foundation

/// Study-level facts read with a DICOM series: identifiers (for the outputs that go back to
/// the PACS), the body measures the clinical stats need, and the heart rate.
///
/// Identifiers must never reach logs: `description` (used by string interpolation) and
/// `logSummary` leave them out; read the fields explicitly where they are needed.
public struct DicomStudyInfo: Codable, Equatable, Sendable, CustomStringConvertible {
    // Identifiers
    public var patientID: String
    public var patientName: String
    public var accessionNumber: String
    public var studyID: String
    public var studyDate: String
    public var studyDescription: String
    public var studyInstanceUID: String
    public var seriesInstanceUID: String
    public var frameOfReferenceUID: String
    // Not identifying
    public var seriesNumber: Int?
    public var seriesDescription: String
    public var modality: String
    public var manufacturer: String
    /// Patient Size (0010,1020) in metres. A value above 3 is taken as centimetres (a
    /// common encoding mistake) and converted.
    public var patientHeightM: Double?
    /// Patient Weight (0010,1030) in kg.
    public var patientWeightKg: Double?
    /// Heart Rate (0018,1088) in beats per minute.
    public var heartRateBPM: Double?

    public init(header h: DicomHeader) {
        patientID = h.patientID
        patientName = h.patientName
        accessionNumber = h.accessionNumber
        studyID = h.studyID
        studyDate = h.studyDate
        studyDescription = h.studyDescription
        studyInstanceUID = h.studyInstanceUID
        seriesInstanceUID = h.seriesInstanceUID
        frameOfReferenceUID = h.frameOfReferenceUID
        seriesNumber = h.seriesNumber
        seriesDescription = h.seriesDescription
        modality = h.modality
        manufacturer = h.manufacturer
        if let s = h.patientSize, s > 0 { patientHeightM = s > 3 ? s / 100 : s }
        if let w = h.patientWeight, w > 0 { patientWeightKg = w }
        if let r = h.heartRate, r > 0 { heartRateBPM = r }
    }

    /// Height in centimetres, as the clinical stats take it.
    public var heightCm: Double? { patientHeightM.map { $0 * 100 } }

    /// Safe for logs: no patient or study identifiers.
    public var logSummary: String {
        var parts = ["series \(seriesNumber.map(String.init) ?? "?") '\(seriesDescription)'", modality]
        if let h = patientHeightM { parts.append(String(format: "height %.2f m", h)) }
        if let w = patientWeightKg { parts.append(String(format: "weight %.1f kg", w)) }
        if let r = heartRateBPM { parts.append(String(format: "heart rate %.0f/min", r)) }
        return parts.joined(separator: ", ")
    }

    public var description: String { logSummary }
}
