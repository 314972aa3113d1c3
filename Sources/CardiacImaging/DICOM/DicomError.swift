/// Errors of DICOM reading and writing. Each names the file or series and the problem in
/// words a user can act on; none carries patient identifiers (file paths and series
/// descriptions only).
public enum DicomError: Error, Equatable, CustomStringConvertible {
    /// The file is not DICOM at all, or its structure is broken.
    case notDicom(path: String, reason: String)
    /// The file ends before its data does.
    case truncated(path: String, reason: String)
    /// A DICOM object that is not an image (SEG, SR, presentation state, ...).
    case notAnImage(path: String, kind: String)
    /// An attribute the geometry or the pixels need is absent.
    case missingAttribute(path: String, attribute: String)
    /// A valid object this reader does not handle (colour, enhanced multi-frame, ...).
    case unsupported(path: String, reason: String)
    /// Files under one Series Instance UID that cannot form one volume (different
    /// orientation, matrix or pixel spacing, slices off a line, uneven frame counts).
    case inconsistentSeries(series: String, reason: String)
    /// Two images at the same position and the same cardiac phase.
    case duplicatePosition(series: String, reason: String)
    /// Slice gaps that differ (a missing slice, a mixed stack).
    case inconsistentSpacing(series: String, reason: String)
    /// No series passes the short-axis cine rules; one reason per series.
    case noShortAxisCine(folder: String, reasons: [String])
    /// The folder holds no DICOM images.
    case noImages(folder: String, skipped: Int)
    /// A label map whose grid is not the series' grid.
    case gridMismatch(String)
    case readFailed(path: String, reason: String)
    case writeFailed(path: String, reason: String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .notDicom(let p, let r): "not a DICOM file: \(p): \(r)"
        case .truncated(let p, let r): "truncated DICOM file: \(p): \(r)"
        case .notAnImage(let p, let k): "not an image: \(p) is a \(k) object"
        case .missingAttribute(let p, let a): "\(p) lacks \(a), which the volume geometry needs"
        case .unsupported(let p, let r): "unsupported DICOM input \(p): \(r)"
        case .inconsistentSeries(let s, let r): "inconsistent series \(s): \(r)"
        case .duplicatePosition(let s, let r): "duplicate images in series \(s): \(r)"
        case .inconsistentSpacing(let s, let r): "uneven slice spacing in series \(s): \(r)"
        case .noShortAxisCine(let f, let reasons):
            "no short-axis cine series in \(f)" + (reasons.isEmpty ? "" : ":\n  " + reasons.joined(separator: "\n  "))
        case .noImages(let f, let n): "no DICOM images in \(f) (\(n) file(s) skipped)"
        case .gridMismatch(let s): "grid mismatch: \(s)"
        case .readFailed(let p, let r): "cannot read \(p): \(r)"
        case .writeFailed(let p, let r): "cannot write \(p): \(r)"
        case .invalidArgument(let s): "invalid argument: \(s)"
        }
    }
}
