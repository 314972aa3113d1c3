import Foundation

/// The version and the machine, for provenance and `autosam info` (the BLAS build: `GEMM.blasConfig`).
public enum BuildInfo {
    public static let version = "0.1.0"

    /// The CPU's model name (/proc/cpuinfo), "unknown" where it cannot be read.
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
}
