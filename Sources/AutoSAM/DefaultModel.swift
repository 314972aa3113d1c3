import Foundation
import NN

/// The embedded default head: trained on the project's synthetic cardiac phantoms with the
/// embedded `demo` encoder (seeded random weights, no download), shipped with the program as
/// a resource. It serves until a site's own labelled volumes have produced a better head.
/// `AUTOSAM_DEFAULT_MODEL` may point at another model folder (a packaging override).
public enum DefaultModel {
    /// Folder holding head.safetensors and model.json.
    public static func directory() throws -> String {
        if let override = ProcessInfo.processInfo.environment["AUTOSAM_DEFAULT_MODEL"], !override.isEmpty {
            return try checked(override)
        }
        guard let url = Bundle.module.url(forResource: "DefaultModel", withExtension: nil) else {
            throw CheckpointError.unreadable(path: "DefaultModel", reason: "the embedded default model is missing from this installation (resource bundle autosam_AutoSAM.resources)")
        }
        return try checked(url.path)
    }

    static func checked(_ dir: String) throws -> String {
        for f in ["head.safetensors", "model.json"] where !FileManager.default.fileExists(atPath: dir + "/" + f) {
            throw CheckpointError.unreadable(path: dir, reason: "not a model folder: \(f) is missing")
        }
        return dir
    }

    /// The embedded head, its metadata and the matching encoder, ready to segment.
    public static func segmenter(cache: EmbeddingCache? = nil) throws -> Segmenter {
        let (head, meta) = try HeadModel.load(try directory())
        guard let source = meta.encoderSource else {
            throw CheckpointError.unreadable(path: try directory(), reason: "the embedded head was trained on encoder \(meta.encoder), which has no name to load it by")
        }
        return try Segmenter(head: head, metadata: meta, encoder: try FrozenEncoder(source: source), cache: cache)
    }
}
