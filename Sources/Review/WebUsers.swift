import Foundation
import HummingbirdBcrypt

/// Who may log in to the review page: a file with one `name:bcrypt-hash` per line (comments
/// with `#`), written by `autosam web-user`. Passwords are never stored, only their bcrypt
/// hashes (cost 12).
public struct WebUsers: Sendable {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    let hashes: [String: String]

    public var names: [String] { hashes.keys.sorted() }

    init(hashes: [String: String]) { self.hashes = hashes }

    /// Reads the file; a missing file is no users (nobody can log in). A malformed line is an
    /// error naming the line.
    public static func load(_ path: String) throws -> WebUsers {
        guard FileManager.default.fileExists(atPath: path) else { return WebUsers(hashes: [:]) }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw Problem("cannot read the users file \(path)")
        }
        var hashes: [String: String] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else { throw Problem("\(path) line \(n + 1): expected name:bcrypt-hash") }
            let name = String(line[..<colon]), hash = String(line[line.index(after: colon)...])
            guard validName(name) else { throw Problem("\(path) line \(n + 1): '\(name)' is not a user name (letters, digits, . _ -)") }
            guard hash.hasPrefix("$2"), hash.count == 60 else { throw Problem("\(path) line \(n + 1): the hash of \(name) is not a bcrypt hash") }
            hashes[name] = hash
        }
        return WebUsers(hashes: hashes)
    }

    /// Whether `password` is this user's. An unknown user costs the same bcrypt work as a
    /// known one, so timing does not tell which names exist.
    public func verify(name: String, password: String) -> Bool {
        guard let hash = hashes[name] else {
            _ = Bcrypt.verify(password, hash: Self.decoy)
            return false
        }
        return Bcrypt.verify(password, hash: hash)
    }

    static let decoy = Bcrypt.hash("decoy password for unknown users", cost: 12)

    public static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// Adds or replaces a user's password, writing the file atomically with mode 0600.
    public static func set(name: String, password: String, in path: String, cost: UInt8 = 12) throws {
        guard validName(name) else { throw Problem("'\(name)' is not a user name (1 to 64 letters, digits, . _ -)") }
        guard password.count >= 10 else { throw Problem("the password must have at least 10 characters") }
        var lines: [String] = []
        if FileManager.default.fileExists(atPath: path) {
            _ = try load(path)  // refuse to rewrite a file we cannot read
            let text = String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
            lines = text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix(name + ":") }
        }
        lines.append(name + ":" + Bcrypt.hash(password, cost: cost))
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let tmp = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: Data((lines.joined(separator: "\n") + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw Problem("cannot write \(tmp)")
        }
        guard rename(tmp, path) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(tmp)
            throw Problem("cannot replace \(path): \(e)")
        }
    }
}
