import CardiacImaging
import Foundation
import Testing

@testable import Service

/// A wall clock that a test sets back or forward while the daemon runs.
final class ShiftedClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: Double = 0
    func set(_ seconds: Double) { lock.lock(); offset = seconds; lock.unlock() }
    func now() -> Double { lock.lock(); defer { lock.unlock() }; return Date().timeIntervalSince1970 + offset }
}

@Suite(.serialized) struct ClockTests {
    /// The wall clock set an hour back (an NTP step, a wrong RTC) while a study waits for its
    /// retry, and a study caught between two scans while the clock goes an hour forward and then
    /// two hours back: the retry still comes after its back-off (not an hour later) and the
    /// quiet period is measured on the monotonic clock, so neither study stalls.
    @Test func aClockSetBackOrForwardStallsNothing() throws {
        let h = try ServiceHarness(quiet: 0.4)
        let clock = ShiftedClock()
        let src = try makeTempFolder()
        defer { removeTempFolder(src) }
        let p7 = try Fixtures.acdcPatient(7, into: src)
        let p8 = try Fixtures.acdcPatient(8, into: src)
        try h.start(prepare: { $0.wallClock = { clock.now() } })
        try lockFolder(h.config.outboxPath)
        try slowCopy(p7, to: h.inbox + "/p7", pause: 0)
        #expect(try waitFor(60) { try h.journal().studies().first?.writeFailures ?? 0 >= 1 })
        clock.set(-3600)
        try unlockFolder(h.config.outboxPath)
        #expect(try h.waitFinished(["p7"], timeout: 30), "the retry waited for the clock:\n\(h.logLines.all.suffix(10).joined(separator: "\n"))")
        clock.set(3600)
        try dropIntoInbox(p8, inbox: h.inbox, as: "p8")
        usleep(200_000)  // seen by a scan, not yet quiet
        clock.set(-3600)
        #expect(try h.waitFinished(["p8"], timeout: 30), "the quiet period waited for the clock")
        #expect(h.stop())
        #expect(try h.states() == ["p7": .done, "p8": .done])
    }
}
