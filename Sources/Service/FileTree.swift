import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What an inbox entry (or an item inside a study) is, told by `lstat`: links are never
/// followed, and nothing here opens a file to find out.
enum EntryType: Equatable {
    case file, folder, link, fifo, socket, device

    static func of(_ path: String) -> EntryType? { status(path)?.type }

    /// The type and the `lstat` record it was told from.
    static func status(_ path: String) -> (type: EntryType, stat: stat)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (of(mode: st.st_mode), st)
    }

    static func of(mode: mode_t) -> EntryType {
        switch mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .folder
        case S_IFLNK: return .link
        case S_IFIFO: return .fifo
        case S_IFSOCK: return .socket
        default: return .device
        }
    }

    /// How a reason names it.
    var phrase: String {
        switch self {
        case .file: return "a file"
        case .folder: return "a folder"
        case .link: return "a symbolic link"
        case .fifo: return "a named pipe (FIFO)"
        case .socket: return "a socket"
        case .device: return "a device file"
        }
    }
}

/// Walking and moving inbox entries without following links or opening special files.
enum FileTree {
    /// Folders deeper than this below a study are not walked (a study is a few levels at most).
    static let maxDepth = 32

    /// Every item below `root` (relative path, type and its `lstat` record, sorted), walked with
    /// `lstat`: linked folders are listed as links, never entered.
    static func walk(_ root: String) -> [(path: String, type: EntryType, stat: stat)] {
        var out: [(path: String, type: EntryType, stat: stat)] = []
        func visit(_ rel: String, depth: Int) {
            let dir = rel.isEmpty ? root : root + "/" + rel
            guard depth < maxDepth, let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
            for name in names {
                let r = rel.isEmpty ? name : rel + "/" + name
                guard let (t, st) = EntryType.status(root + "/" + r) else { continue }
                out.append((r, t, st))
                if t == .folder { visit(r, depth: depth + 1) }
            }
        }
        visit("", depth: 0)
        return out.sorted { $0.path < $1.path }
    }

    /// Refuses an entry the service must not read: a link (it would read what nobody gave it),
    /// a FIFO (opening it blocks), a socket or a device, at the top or anywhere inside a folder.
    static func refuseUnsafe(_ path: String, what: String = "study") throws {
        let name = (path as NSString).lastPathComponent
        guard let type = EntryType.of(path) else { throw StudyError("the \(what) '\(name)' is gone") }
        switch type {
        case .file, .folder: break
        case .link:
            throw StudyError("'\(name)' is a symbolic link; the service never follows links (it would read files nobody gave it). Copy the \(what) itself into the folder.")
        default:
            throw StudyError("'\(name)' is \(type.phrase), not a file or a folder; the service reads only plain files and folders")
        }
        guard type == .folder else { return }
        let odd = walk(path).filter { $0.type != .file && $0.type != .folder }
        guard !odd.isEmpty else { return }
        let examples = odd.prefix(3).map { "'\($0.path)' is \($0.type.phrase)" }.joined(separator: "; ")
        throw StudyError("the folder '\(name)' holds \(odd.count) item(s) that are not plain files or folders (\(examples)); the service never follows links nor opens special files. Copy the files themselves into the \(what).")
    }

    /// Copies `from` to `to` (which must not exist) as it is: folders and plain files copied,
    /// links recreated as links (their targets never read), FIFOs recreated empty; sockets and
    /// device files are not copied (they hold no data). For moves across file systems.
    static func copy(_ from: String, _ to: String) throws {
        guard let type = EntryType.of(from) else { throw StudyError("cannot copy \(from): it is gone") }
        switch type {
        case .folder:
            try FileManager.default.createDirectory(atPath: to, withIntermediateDirectories: false)
            for name in try FileManager.default.contentsOfDirectory(atPath: from) { try copy(from + "/" + name, to + "/" + name) }
        case .file:
            try copyFile(from, to)
        case .link:
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: from)
            guard symlink(target, to) == 0 else { throw posixError("cannot recreate the link \(to)") }
        case .fifo:
            guard mkfifo(to, 0o600) == 0 else { throw posixError("cannot recreate the FIFO \(to)") }
        case .socket, .device:
            break
        }
    }

    /// Copies one plain file, opened without following links, and flushes it.
    static func copyFile(_ from: String, _ to: String) throws {
        let src = open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard src >= 0 else { throw posixError("cannot open \(from)") }
        defer { close(src) }
        let dst = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard dst >= 0 else { throw posixError("cannot create \(to)") }
        var ok = false
        defer { close(dst); if !ok { unlink(to) } }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(src, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw posixError("cannot read \(from)") }
            if n == 0 { break }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(dst, $0.baseAddress! + done, n - done) }
                if w < 0 { if errno == EINTR { continue }; throw posixError("cannot write \(to)") }
                done += w
            }
        }
        guard fsync(dst) == 0 else { throw posixError("cannot flush \(to)") }
        ok = true
    }

    /// Reads every plain file of `path` (a file or a folder) through to its end, so that a disk
    /// that cannot deliver the input (EIO, a bad sector, a lost network mount) is told apart
    /// from an input that is malformed: the first is the server's fault and worth retrying,
    /// the second is the study's. Links and special files are never opened, and any other
    /// error (a missing file, a permission) is left for the reader to report.
    static func readThrough(_ path: String) throws {
        let files: [String]
        switch EntryType.of(path) {
        case .folder?: files = walk(path).filter { $0.type == .file }.map { path + "/" + $0.path }
        case .file?: files = [path]
        default: return
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for file in files {
            let fd = open(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else {
                if InputReadError.isTransient(errno) { throw InputReadError(file: file, errno: errno) }
                continue
            }
            defer { close(fd) }
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && InputReadError.isTransient(errno) { throw InputReadError(file: file, errno: errno) }
                if n <= 0 { break }
            }
        }
    }

    /// Removes `path` without following links: a link is unlinked, never its target.
    static func remove(_ path: String) throws {
        guard let type = EntryType.of(path) else { return }
        if type == .folder {
            for name in try FileManager.default.contentsOfDirectory(atPath: path) { try remove(path + "/" + name) }
            guard rmdir(path) == 0 else { throw posixError("cannot remove \(path)") }
        } else {
            guard unlink(path) == 0 else { throw posixError("cannot remove \(path)") }
        }
    }

    static func posixError(_ what: String) -> StudyError {
        StudyError("\(what): \(String(cString: strerror(errno)))")
    }
}

/// An input file could not be read from disk: the study is kept and tried again later.
struct InputReadError: Error, CustomStringConvertible {
    var file: String
    var errno: Int32
    var description: String { "cannot read \(file) from disk: \(String(cString: strerror(errno)))" }

    /// Errors of the storage, not of the file: a failing disk or a network mount that went away.
    static func isTransient(_ code: Int32) -> Bool { [EIO, ESTALE, ETIMEDOUT, ENOTCONN, EREMOTEIO].contains(code) }
}
