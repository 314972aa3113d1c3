import CBLAS
import Foundation

/// Versions and library configuration, for provenance and `autosam info`.
public enum BuildInfo {
    public static let version = "0.1.0"

    /// OpenBLAS's own description of its build and the core type it runs.
    public static var blasConfig: String {
        guard let c = openblas_get_config() else { return "unknown" }
        return String(cString: c) + " core=" + (openblas_get_corename().map { String(cString: $0) } ?? "?")
    }

    public static var blasThreads: Int { Int(openblas_get_num_threads()) }

    /// The CPU's model name (/proc/cpuinfo), "unknown" where it cannot be read.
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
}
