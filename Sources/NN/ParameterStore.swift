import Tensor

/// Named tensors from a checkpoint, loaded strictly: every tensor a model takes must exist
/// with the expected shape, and `finish()` fails if any tensor was left unused.
public final class ParameterStore {
    public private(set) var tensors: [String: Tensor]
    private var used = Set<String>()

    public init(_ tensors: [String: Tensor]) { self.tensors = tensors }

    public var keys: [String] { tensors.keys.sorted() }

    /// Takes `key`, checking its shape (`nil` entries in `shape` accept any size).
    public func take(_ key: String, shape: [Int?]) throws -> Tensor {
        guard let t = tensors[key] else { throw CheckpointError.missingKey(key) }
        let ok = t.shape.count == shape.count && zip(t.shape, shape).allSatisfy { $1 == nil || $0 == $1 }
        guard ok else { throw CheckpointError.shapeMismatch(key: key, expected: shape.map { $0 ?? -1 }, found: t.shape) }
        used.insert(key)
        return t
    }

    public func take(_ key: String, shape: [Int]) throws -> Tensor { try take(key, shape: shape.map { Optional($0) }) }

    /// Marks keys as deliberately unused (e.g. the parts of SAM a head does not need).
    public func ignore(prefix: String) {
        for k in tensors.keys where k.hasPrefix(prefix) { used.insert(k) }
    }

    /// Throws if any tensor was neither taken nor ignored.
    public func finish() throws {
        let unused = tensors.keys.filter { !used.contains($0) }.sorted()
        if !unused.isEmpty { throw CheckpointError.unexpectedKeys(unused) }
    }

    /// A view on the keys under `prefix.` (with the prefix removed), sharing the used set.
    public func scoped(_ prefix: String) -> Scope { Scope(store: self, prefix: prefix) }

    public struct Scope {
        let store: ParameterStore
        let prefix: String

        public func take(_ key: String, shape: [Int?]) throws -> Tensor { try store.take(prefix + "." + key, shape: shape) }
        public func take(_ key: String, shape: [Int]) throws -> Tensor { try store.take(prefix + "." + key, shape: shape) }
        public func scoped(_ sub: String) -> Scope { Scope(store: store, prefix: prefix + "." + sub) }
        public func has(_ key: String) -> Bool { store.tensors[prefix + "." + key] != nil }
    }
}
