/// Errors of the imaging layer. Each names the problem in words a user can act on.
public enum ImagingError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(String)
    case unreadable(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case notEnoughDimensions(path: String, found: Int, needed: Int)
    case gridMismatch(String)
    case labelOutOfRange(value: Int, maxClass: Int, count: Int)
    case writeFailed(path: String, reason: String)
    case invalidArgument(String)
    case invalidDataset(String)

    public var description: String {
        switch self {
        case .fileNotFound(let p): "file not found: \(p)"
        case .unreadable(let p, let r): "cannot read \(p): \(r)"
        case .unsupported(let p, let r): "unsupported input \(p): \(r)"
        case .notEnoughDimensions(let p, let f, let n):
            "\(p) has \(f) spatial dimension(s) with more than one voxel; \(n)D is needed"
        case .gridMismatch(let s): "grid mismatch: \(s)"
        case .labelOutOfRange(let v, let m, let c):
            "label map holds value \(v) in \(c) voxel(s); only 0...\(m) are allowed"
        case .writeFailed(let p, let r): "cannot write \(p): \(r)"
        case .invalidArgument(let s): "invalid argument: \(s)"
        case .invalidDataset(let s): "invalid dataset: \(s)"
        }
    }
}
