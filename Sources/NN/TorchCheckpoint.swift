import Foundation
import Tensor
import ZIPFoundation

/// Reads PyTorch `.pth` files written by `torch.save(state_dict)` (a zip archive holding
/// `<name>/data.pkl` and raw tensor storages `<name>/data/<key>`), the format of the official
/// SAM checkpoints. The pickle goes through `RestrictedUnpickler`: only tensors, never code.
public enum TorchCheckpoint {
    /// Loads every tensor as Float32 (float16/bfloat16/float64 and integer storages are converted).
    public static func load(_ path: String) throws -> [String: Tensor] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError.unreadable(path: path, reason: "no such file")
        }
        let archive: Archive
        do {
            archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw CheckpointError.notACheckpoint(path: path, reason: "not a zip archive (legacy or corrupt torch.save file)")
        }
        guard let pkl = archive.first(where: { $0.path.hasSuffix("data.pkl") }) else {
            throw CheckpointError.notACheckpoint(path: path, reason: "no data.pkl in the archive")
        }
        let prefix = String(pkl.path.dropLast("data.pkl".count))
        let fileSize = ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.uint64Value ?? 0
        let pickle = try extract(archive, pkl, path: path, fileSize: fileSize)
        var unpickler = RestrictedUnpickler(pickle)
        let root = try unpickler.load()
        guard case .dict(let entries, let order) = root else {
            throw CheckpointError.notACheckpoint(path: path, reason: "the pickle is not a dict of tensors")
        }
        // Group tensors by storage so each storage is read once.
        var refs: [(String, RestrictedUnpickler.TensorRef)] = []
        for key in order {
            switch entries[key]! {
            case .tensor(let t): refs.append((key, t))
            case .dict:
                throw CheckpointError.notACheckpoint(path: path, reason: "'\(key)' holds a nested dict; pass the state dict itself")
            default:
                throw CheckpointError.notACheckpoint(path: path, reason: "'\(key)' is not a tensor")
            }
        }
        let byStorage = Dictionary(grouping: refs, by: { $0.1.storage.key })
        var out: [String: Tensor] = [:]
        for (storageKey, tensors) in byStorage {
            guard let entry = archive[prefix + "data/" + storageKey] else {
                throw CheckpointError.truncatedStorage(key: tensors[0].0, needed: 1, available: 0)
            }
            let bytes = try extract(archive, entry, path: path, fileSize: fileSize)
            for (name, ref) in tensors {
                out[name] = try materialize(name, ref, bytes)
            }
        }
        return out
    }

    /// One entry's bytes. `fileSize` is the archive's size on disk.
    static func extract(_ archive: Archive, _ entry: Entry, path: String, fileSize: UInt64) throws -> Data {
        // Only plain file entries: ZIPFoundation reads a "symlink" entry's claimed size in one
        // allocation (fuzzing: 1.8 GB claimed in a 749-byte file).
        guard entry.type == .file else {
            throw CheckpointError.notACheckpoint(path: path, reason: "archive entry \(entry.path) is a \(entry.type == .symlink ? "symbolic link" : "folder"), not a file")
        }
        // A zip header may claim any size: nothing is reserved beyond what deflate (at most
        // 1032:1) could expand the entry's bytes, as stored in this file, to.
        let stored = min(entry.compressedSize, fileSize)
        guard entry.uncompressedSize <= stored * 1032 + 64 else {
            throw CheckpointError.notACheckpoint(
                path: path, reason: "archive entry \(entry.path) claims \(entry.uncompressedSize) bytes, more than its \(stored) stored bytes can hold")
        }
        var data = Data()
        data.reserveCapacity(Int(entry.uncompressedSize))
        do {
            _ = try archive.extract(entry, bufferSize: 1 << 20, skipCRC32: false) { data.append($0) }
        } catch {
            throw CheckpointError.unreadable(path: path, reason: "archive entry \(entry.path): \(error)")
        }
        return data
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "FloatStorage", "IntStorage": 4
        case "DoubleStorage", "LongStorage": 8
        case "HalfStorage", "BFloat16Storage", "ShortStorage": 2
        case "ByteStorage", "CharStorage", "BoolStorage": 1
        default: nil
        }
    }

    static func materialize(_ name: String, _ ref: RestrictedUnpickler.TensorRef, _ bytes: Data) throws -> Tensor {
        let dtype = ref.storage.dtype
        guard let esize = elementSize(dtype) else { throw CheckpointError.unsupportedDtype(key: name, dtype: dtype) }
        // Integer storages (BatchNorm's int64 num_batches_tracked) are read as Float32: exact up to
        // 2^24, which the counters a model loader keeps only for accounting need not be.
        guard ["FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage", "IntStorage",
               "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage"].contains(dtype) else {
            throw CheckpointError.unsupportedDtype(key: name, dtype: dtype)
        }
        guard let count = CheckedSize.product(ref.size), ref.stride.count == ref.size.count, ref.offset >= 0,
              ref.stride.allSatisfy({ $0 >= 0 })
        else {
            throw CheckpointError.malformedPickle("tensor '\(name)' has an invalid size or stride")
        }
        // The last element's index decides how much storage is needed (strides are not negative).
        var last: Int? = ref.offset
        for (s, st) in zip(ref.size, ref.stride) where s > 0 {
            last = last.flatMap { l in CheckedSize.multiply(s - 1, st).flatMap { CheckedSize.add(l, $0) } }
        }
        guard let last, let needed = count == 0 ? 0 : CheckedSize.add(last, 1).flatMap({ CheckedSize.multiply($0, esize) }) else {
            throw CheckpointError.malformedPickle("tensor '\(name)' reaches past any possible storage")
        }
        guard needed <= bytes.count else {
            throw CheckpointError.truncatedStorage(key: name, needed: needed, available: bytes.count)
        }
        // Every element has its own storage (no zero-stride expansion): a few stored bytes never
        // become terabytes of tensor.
        guard count <= bytes.count / esize else {
            throw CheckpointError.malformedPickle("tensor '\(name)' has \(count) elements but its storage holds \(bytes.count / esize)")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            func value(_ i: Int) -> Float {
                switch dtype {
                case "FloatStorage": return raw.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
                case "DoubleStorage": return Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
                case "HalfStorage": return Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                case "LongStorage": return Float(raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                case "IntStorage": return Float(raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
                case "ShortStorage": return Float(raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
                case "CharStorage": return Float(raw.loadUnaligned(fromByteOffset: i, as: Int8.self))
                case "ByteStorage", "BoolStorage": return Float(raw.loadUnaligned(fromByteOffset: i, as: UInt8.self))
                default:  // BFloat16
                    let b = raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)
                    return Float(bitPattern: UInt32(b) << 16)
                }
            }
            // Walk the logical indices in row-major order through the strides.
            let rank = ref.size.count
            var idx = [Int](repeating: 0, count: rank)
            for o in 0..<count {
                var src = ref.offset
                for d in 0..<rank { src += idx[d] * ref.stride[d] }
                values[o] = value(src)
                var d = rank - 1
                while d >= 0 {
                    idx[d] += 1
                    if idx[d] < ref.size[d] { break }
                    idx[d] = 0
                    d -= 1
                }
            }
        }
        return Tensor(shape: ref.size, data: values)
    }
}
