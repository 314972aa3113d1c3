import Foundation
import Tensor

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian data.
public enum SafeTensors {
    public static func load(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CheckpointError.unreadable(path: path, reason: "no such file or unreadable")
        }
        return try decode(data, path: path)
    }

    public static func decode(_ data: Data, path: String = "<memory>") throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw CheckpointError.notACheckpoint(path: path, reason: "shorter than its header length") }
        let data = Data(data)  // indices from 0 whatever slice was passed
        let length = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length > 1, length <= UInt64(data.count - 8) else {
            throw CheckpointError.notACheckpoint(path: path, reason: "header length \(length) does not fit the file")
        }
        let n = Int(length)
        let headerData = data.subdata(in: 8..<(8 + n))
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw CheckpointError.notACheckpoint(path: path, reason: "header is not a JSON object")
        }
        let base = 8 + n
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw CheckpointError.notACheckpoint(path: path, reason: "bad header entry for '\(name)'") }
            guard let count = CheckedSize.product(shape) else {
                throw CheckpointError.notACheckpoint(path: path, reason: "'\(name)': shape \(shape) is negative or too large")
            }
            let esize: Int
            switch dtype {
            case "F32": esize = 4
            case "F16", "BF16": esize = 2
            case "F64": esize = 8
            default: throw CheckpointError.unsupportedDtype(key: name, dtype: dtype)
            }
            let (lo, hi) = (offsets[0], offsets[1])
            guard lo >= 0, hi >= lo, let bytes = CheckedSize.multiply(count, esize), hi - lo == bytes else {
                throw CheckpointError.notACheckpoint(path: path, reason: "'\(name)': byte range does not match its shape")
            }
            guard hi <= data.count - base else {
                throw CheckpointError.truncatedStorage(key: name, needed: hi - lo, available: max(0, data.count - base - lo))
            }
            var values = [Float](repeating: 0, count: count)
            data.withUnsafeBytes { raw in
                let p = raw.baseAddress! + base + lo
                for i in 0..<count {
                    switch dtype {
                    case "F32": values[i] = Float(bitPattern: UInt32(littleEndian: (p + 4 * i).loadUnaligned(as: UInt32.self)))
                    case "F64": values[i] = Float(Double(bitPattern: UInt64(littleEndian: (p + 8 * i).loadUnaligned(as: UInt64.self))))
                    case "F16": values[i] = Float(Float16(bitPattern: UInt16(littleEndian: (p + 2 * i).loadUnaligned(as: UInt16.self))))
                    default: values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: (p + 2 * i).loadUnaligned(as: UInt16.self))) << 16)
                    }
                }
            }
            tensors[name] = Tensor(shape: shape, data: values)
        }
        return (tensors, metadata)
    }

    /// Encodes Float32 tensors (sorted by name) with optional string metadata.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names { tensors[name]!.data.withUnsafeBytes { out.append(contentsOf: $0) } }
        return out
    }
}
