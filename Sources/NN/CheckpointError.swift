/// Why a checkpoint or weight file could not be used. Each case names the dotted key path or
/// the file part concerned.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case notACheckpoint(path: String, reason: String)
    case forbiddenPickle(String)
    case malformedPickle(String)
    case missingKey(String)
    case unexpectedKeys([String])
    case shapeMismatch(key: String, expected: [Int], found: [Int])
    case truncatedStorage(key: String, needed: Int, available: Int)
    case unsupportedDtype(key: String, dtype: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): "cannot read checkpoint \(p): \(r)"
        case .notACheckpoint(let p, let r): "\(p) is not a PyTorch/safetensors checkpoint: \(r)"
        case .forbiddenPickle(let s): "refusing the checkpoint's pickle: \(s) (a state dict needs only tensors)"
        case .malformedPickle(let s): "malformed pickle: \(s)"
        case .missingKey(let k): "checkpoint has no tensor '\(k)'"
        case .unexpectedKeys(let ks):
            "checkpoint has \(ks.count) unexpected tensor(s): " + ks.prefix(5).joined(separator: ", ") + (ks.count > 5 ? ", ..." : "")
        case .shapeMismatch(let k, let e, let f): "tensor '\(k)' has shape \(f), expected \(e)"
        case .truncatedStorage(let k, let n, let a): "tensor '\(k)' needs \(n) bytes of storage but only \(a) are present (truncated file?)"
        case .unsupportedDtype(let k, let d): "tensor '\(k)' has unsupported dtype \(d)"
        }
    }
}
