import Foundation

/// Writes files so that a reader sees either the old file or the complete new one, never a
/// partial one: the content goes to a hidden temporary name in the same folder, is flushed,
/// and is renamed over the destination.
public enum AtomicFile {
    /// A hidden temporary path beside `path` that keeps its extension (NIfTI's writer picks
    /// compression from the name).
    static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        let token = UUID().uuidString.prefix(8)
        return dir + "/.tmp-\(token)-" + url.lastPathComponent
    }

    /// Runs `write` against a temporary path, then renames it to `path`. On failure the
    /// temporary file is removed and the destination is left as it was.
    public static func write(to path: String, _ write: (String) throws -> Void) throws {
        let tmp = temporaryPath(for: path)
        do {
            try write(tmp)
            try syncFile(tmp)
            guard rename(tmp, path) == 0 else {
                throw ImagingError.writeFailed(path: path, reason: String(cString: strerror(errno)))
            }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// Writes `data` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { tmp in
            guard FileManager.default.createFile(atPath: tmp, contents: data) else {
                throw ImagingError.writeFailed(path: path, reason: "cannot create file")
            }
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    private static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        defer { close(fd) }
        if fsync(fd) != 0 {
            throw ImagingError.writeFailed(path: path, reason: String(cString: strerror(errno)))
        }
    }
}
