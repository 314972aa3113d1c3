import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// systemd's notification protocol (sd_notify(3)), written out: one datagram of
/// newline-separated `KEY=value` lines sent to the unix socket named by `$NOTIFY_SOCKET`
/// (a path, or an abstract socket when it starts with '@'). Without the variable nothing is
/// sent, so the daemon runs the same outside systemd.
public final class SystemdNotifier: @unchecked Sendable {
    public let socketPath: String?
    /// The watchdog interval systemd asks for (`$WATCHDOG_USEC`), when it is meant for us.
    public let watchdogInterval: Double?
    private let lock = NSLock()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        var interval: Double?
        if let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 {
            // WATCHDOG_PID, when set, names the process the watchdog is for.
            if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init) {
                if pid == getpid() { interval = Double(usec) / 1e6 }
            } else {
                interval = Double(usec) / 1e6
            }
        }
        watchdogInterval = interval
    }

    public var isActive: Bool { socketPath != nil }

    /// Sends `state` (e.g. "READY=1\nSTATUS=idle"). Returns false when there is no socket or the
    /// send failed; a service must keep running either way.
    @discardableResult
    public func send(_ state: String) -> Bool {
        guard let path = socketPath else { return false }
        lock.lock()
        defer { lock.unlock() }
        return Self.send(state, to: path)
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(Self.clean(status))") }
    public func status(_ text: String) { send("STATUS=\(Self.clean(text))") }
    public func watchdog() { send("WATCHDOG=1") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(Self.clean(status))") }

    /// STATUS is one line.
    static func clean(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: " ") }

    /// One datagram to the socket at `path` ('@' first: the abstract namespace).
    static func send(_ message: String, to path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity || (abstract && bytes.count <= capacity) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { buf in
            for (i, b) in bytes.enumerated() { buf[i] = b }
        }
        // Abstract names are exactly as long as given (no terminating NUL).
        let length = MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1)
        let payload = Array(message.utf8)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, payload.count, Int32(MSG_NOSIGNAL), sa, socklen_t(length)) }
            }
        }
        return sent == payload.count
    }
}
