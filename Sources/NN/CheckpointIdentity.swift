import Crypto
import Foundation

/// Which checkpoint file a run used: its name and SHA-256, and whether it is one of the
/// official SAM releases (recognised by the SHA-256 prefix the release file names carry,
/// as torch.hub names files).
public struct CheckpointIdentity: Codable, Equatable, Sendable {
    public var file: String
    public var sha256: String
    public var official: String?

    /// Official SAM checkpoints: file name -> model size. The six hex digits in each name are
    /// the start of the file's SHA-256.
    public static let officialReleases: [(file: String, size: String, shaPrefix: String)] = [
        ("sam_vit_b_01ec64.pth", "vit_b", "01ec64"),
        ("sam_vit_l_0b3195.pth", "vit_l", "0b3195"),
        ("sam_vit_h_4b8939.pth", "vit_h", "4b8939"),
        // LiteMedSAM (MedSAM's distilled TinyViT model; scripts/fetch_weights.sh checks the whole hash).
        ("lite_medsam.pth", "litemedsam", "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"),
    ]

    /// Hashes the file in 4 MiB chunks.
    public static func of(_ path: String) throws -> CheckpointIdentity {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw CheckpointError.unreadable(path: path, reason: "cannot open")
        }
        defer { try? h.close() }
        var hasher = SHA256()
        while let chunk = try h.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        let official = officialReleases.first { hex.hasPrefix($0.shaPrefix) }.map { "\($0.file) (\($0.size))" }
        return CheckpointIdentity(file: URL(fileURLWithPath: path).lastPathComponent, sha256: hex, official: official)
    }
}
