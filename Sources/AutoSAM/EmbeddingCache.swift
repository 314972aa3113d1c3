import Crypto
import Foundation
import NN
import Synchronization
import Tensor

/// Encoder embeddings on disk, keyed by (encoder identity, preprocessing plan, pixels), so the
/// frozen encoder runs once per slice. Entries are float16 with a SHA-256 of their payload;
/// a damaged entry is detected, removed and recomputed, never trusted.
public final class EmbeddingCache: @unchecked Sendable {
    public let folder: String
    /// Counters, safe to read and bump from several threads (the experiment and the service
    /// share one cache object between their work).
    public var hits: Int { counts.withLock { $0.hits } }
    public var misses: Int { counts.withLock { $0.misses } }
    public var repaired: Int { counts.withLock { $0.repaired } }
    private let counts = Mutex((hits: 0, misses: 0, repaired: 0))

    public init(folder: String) throws {
        self.folder = folder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    public static func key(encoder: String, plan: PreprocessingPlan, pixels: [Float]) -> String {
        var h = SHA256()
        h.update(data: Data(encoder.utf8))
        // The plan's encoder-side fields (augmentation, test-time rotations and localisation
        // only choose which pixels arrive; the embedding statistics apply after the encoder).
        var p = plan
        p.augmentation = nil
        p.standardizeEmbeddings = false
        p.embeddingStatistics = nil
        p.testTimeRotations = 1
        p.localization = nil
        h.update(data: (try? JSONEncoder.sorted.encode(p)) ?? Data())
        pixels.withUnsafeBytes { h.update(bufferPointer: $0) }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static let magic = Data("ASEMB1\n".utf8)

    /// The cached embedding, or `compute()`'s result stored for next time.
    public func embedding(key: String, compute: () throws -> Tensor) rethrows -> Tensor {
        let path = "\(folder)/\(key).emb"
        if let data = FileManager.default.contents(atPath: path) {
            if let t = Self.decode(data) {
                counts.withLock { $0.hits += 1 }
                return t
            }
            counts.withLock { $0.repaired += 1 }
            try? FileManager.default.removeItem(atPath: path)
        }
        counts.withLock { $0.misses += 1 }
        let t = try compute()
        let tmp = path + ".tmp-\(UUID().uuidString.prefix(6))"
        if FileManager.default.createFile(atPath: tmp, contents: Self.encode(t)) { rename(tmp, path) }
        // What a later hit will return (float16-rounded), so a first run and a rerun agree.
        return Tensor(shape: t.shape, data: t.data.map { Float(Float16($0)) })
    }

    static func encode(_ t: Tensor) -> Data {
        var payload = Data()
        var rank = UInt32(t.shape.count)
        withUnsafeBytes(of: &rank) { payload.append(contentsOf: $0) }
        for d in t.shape {
            var v = UInt32(d)
            withUnsafeBytes(of: &v) { payload.append(contentsOf: $0) }
        }
        let halves = t.data.map { Float16($0).bitPattern }
        halves.withUnsafeBytes { payload.append(contentsOf: $0) }
        var out = magic
        out.append(Data(SHA256.hash(data: payload)))
        out.append(payload)
        return out
    }

    static func decode(_ data: Data) -> Tensor? {
        let m = magic.count
        guard data.count > m + 32 + 4, data.prefix(m) == magic else { return nil }
        let digest = data.subdata(in: m..<(m + 32)), payload = data.subdata(in: (m + 32)..<data.count)
        guard Data(SHA256.hash(data: payload)) == digest else { return nil }
        return payload.withUnsafeBytes { raw -> Tensor? in
            let rank = Int(raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
            guard rank > 0, rank <= 4, payload.count >= 4 + 4 * rank else { return nil }
            let shape = (0..<rank).map { Int(raw.loadUnaligned(fromByteOffset: 4 + 4 * $0, as: UInt32.self)) }
            let base = 4 + 4 * rank
            guard let count = CheckedSize.product(shape), count <= (payload.count - base) / 2, payload.count == base + 2 * count else { return nil }
            let values = (0..<count).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: base + 2 * $0, as: UInt16.self))) }
            return Tensor(shape: shape, data: values)
        }
    }
}
