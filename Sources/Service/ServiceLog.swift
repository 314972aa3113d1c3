import Foundation

/// Log lines on standard error. Under systemd (`$JOURNAL_STREAM` set) each line starts with its
/// syslog priority (`<3>` ... `<7>`), which journald reads; elsewhere with a UTC time stamp.
/// Callers never pass patient identifiers: studies are named by their journal number.
public final class ServiceLog: @unchecked Sendable {
    public let level: LogLevel
    let journald: Bool
    private let lock = NSLock()
    private let sink: (@Sendable (String) -> Void)?

    public init(level: LogLevel, environment: [String: String] = ProcessInfo.processInfo.environment, sink: (@Sendable (String) -> Void)? = nil) {
        self.level = level
        journald = environment["JOURNAL_STREAM"] != nil
        self.sink = sink
    }

    public func debug(_ s: @autoclosure () -> String) { write(.debug, s()) }
    public func info(_ s: @autoclosure () -> String) { write(.info, s()) }
    public func warning(_ s: @autoclosure () -> String) { write(.warning, s()) }
    public func error(_ s: @autoclosure () -> String) { write(.error, s()) }

    func write(_ l: LogLevel, _ message: @autoclosure () -> String) {
        guard l >= level else { return }
        let text = message().replacingOccurrences(of: "\n", with: " | ")
        let line: String
        if journald {
            let prio = [LogLevel.debug: 7, .info: 6, .warning: 4, .error: 3][l]!
            line = "<\(prio)>\(text)"
        } else {
            let f = ISO8601DateFormatter()
            line = "\(f.string(from: Date())) \(l.rawValue.uppercased()) \(text)"
        }
        lock.lock()
        defer { lock.unlock() }
        if let sink { sink(line) } else { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

/// A thread-safe flag and heartbeat shared by the worker, the signal handlers and the watchdog.
final class DaemonState: @unchecked Sendable {
    private let lock = NSLock()
    private var _stop = false
    private var _beat = ServiceDaemon.monotonic()
    private var _status = "starting"

    var stopRequested: Bool { lock.lock(); defer { lock.unlock() }; return _stop }
    func requestStop() { lock.lock(); _stop = true; lock.unlock() }
    func heartbeat() { lock.lock(); _beat = ServiceDaemon.monotonic(); lock.unlock() }
    var sinceHeartbeat: Double { lock.lock(); defer { lock.unlock() }; return ServiceDaemon.monotonic() - _beat }
    var status: String {
        get { lock.lock(); defer { lock.unlock() }; return _status }
        set { lock.lock(); _status = newValue; lock.unlock() }
    }

    // A shared queue's bookkeeping: the study in hand, studies done, and leases found lost by
    // the heartbeat (the study in hand stops at its next check).
    private var _study: Int64?
    private var _head: String?
    /// The head version served (set by the loop; read by the heartbeat).
    var head: String? {
        get { lock.lock(); defer { lock.unlock() }; return _head }
        set { lock.lock(); _head = newValue; lock.unlock() }
    }
    private var _done = 0
    private var _lost = Set<Int64>()
    var study: Int64? {
        get { lock.lock(); defer { lock.unlock() }; return _study }
        set { lock.lock(); _study = newValue; lock.unlock() }
    }
    var done: Int { lock.lock(); defer { lock.unlock() }; return _done }
    func countDone() { lock.lock(); _done += 1; lock.unlock() }
    func leaseLost(_ ids: [Int64]) { lock.lock(); _lost.formUnion(ids); lock.unlock() }
    func isLost(_ id: Int64) -> Bool { lock.lock(); defer { lock.unlock() }; return _lost.contains(id) }
}

/// A flag shared with a timer's handler; `set` returns the value it replaced.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set(_ v: Bool) -> Bool { lock.lock(); defer { lock.unlock() }; let old = value; value = v; return old }
}
