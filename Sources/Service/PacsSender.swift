import CardiacImaging
import Foundation
import Synchronization

/// Sends finished DICOM studies' results (SEG, SR, QC picture) to the configured PACS
/// destinations by C-STORE, on a thread of its own: segmentation never waits for a PACS. What
/// to send is in the journal (`sends`, queued with each study's `done`), so nothing is lost
/// across restarts; a failed try waits (doubling from `pacs.retry_backoff_s` up to
/// `pacs.retry_backoff_max_s`) and is tried again, for as long as the service runs. A peer
/// that receives an object twice (a crash between its answer and our journal entry) keeps one
/// copy: DICOM storage is keyed by the SOP Instance UID.
final class PacsSender: @unchecked Sendable {
    let config: ServiceConfig
    let journal: any StudyJournal
    let log: ServiceLog
    private let stopFlag = Mutex(false)
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// The wall clock (journal times); a test may move it.
    var wallClock: @Sendable () -> Double = { Date().timeIntervalSince1970 }

    init(config: ServiceConfig, journal: any StudyJournal, log: ServiceLog) {
        self.config = config
        self.journal = journal
        self.log = log
    }

    /// The (destination, file) pairs to queue for a study whose outputs are in `folder`: every
    /// DICOM result present, for every destination.
    static func sends(config: ServiceConfig, folder: String) -> [(destination: String, path: String)] {
        guard !config.pacsDestinations.isEmpty else { return [] }
        let files = ["seg_ed.dcm", "seg_es.dcm", "sr.dcm", "qc.dcm"].map { folder + "/" + $0 }.filter { FileManager.default.fileExists(atPath: $0) }
        return config.pacsDestinations.flatMap { d in files.map { (d.description, $0) } }
    }

    func start() {
        let t = Thread { [self] in
            run()
            finished.signal()
        }
        t.name = "pacs-sender"
        t.start()
    }

    /// Asks the thread to stop after the association in progress, and waits for it.
    func stop() {
        stopFlag.withLock { $0 = true }
        wake.signal()
        finished.wait()
    }

    /// Wakes the thread (a study was queued).
    func poke() { wake.signal() }

    private var stopping: Bool { stopFlag.withLock { $0 } }

    private func run() {
        var failures = 0
        while !stopping {
            var pause = max(config.pollInterval, 1)
            do {
                if try sendDue() { continue }
                failures = 0
            } catch {
                failures += 1
                pause = min(config.pacsRetryBackoffMax, max(1, config.pollInterval) * pow(2, Double(failures)), 60)
                log.error("pacs: the journal failed (\(error)); again in \(Int(pause)) s")
            }
            _ = wake.wait(timeout: .now() + pause)
        }
    }

    func delay(afterAttempts n: Int) -> Double {
        min(config.pacsRetryBackoffMax, config.pacsRetryBackoff * pow(2, Double(max(0, n))))
    }

    /// One round: every due send, one association per destination. True if it sent anything.
    @discardableResult
    func sendDue() throws -> Bool {
        let now = wallClock()
        let due = try journal.dueSends(now: now, latest: now + config.pacsRetryBackoffMax + 60)
        guard !due.isEmpty else { return false }
        var sentAny = false
        for (name, rows) in Dictionary(grouping: due, by: \.destination).sorted(by: { $0.key < $1.key }) {
            if stopping { break }
            guard let destination = config.pacsDestinations.first(where: { $0.description == name }) else {
                for r in rows { try journal.markSendFailed(r.id, error: "\(name) is no longer a configured destination", delay: config.pacsRetryBackoffMax) }
                continue
            }
            var present: [SendRecord] = []
            for r in rows {
                if FileManager.default.fileExists(atPath: r.path) { present.append(r) } else {
                    try journal.markSendFailed(r.id, error: "the result file is gone from the outbox", delay: config.pacsRetryBackoffMax)
                }
            }
            guard !present.isEmpty else { continue }
            let studies = Set(present.map(\.studyId)).sorted().map { "#\($0)" }.joined(separator: ", ")
            do {
                let statuses = try DicomSender.store(present.map(\.path), to: destination, callingAE: config.pacsCallingAE,
                                                     timeoutSeconds: Int(config.pacsTimeout.rounded(.up)), tls: config.pacsTLS)
                var failed = 0
                for (r, s) in zip(present, statuses) {
                    if DicomSender.stored(s) {
                        try journal.markSent(r.id)
                        sentAny = true
                    } else {
                        failed += 1
                        let why = s == 0xFFFF ? "not sent (the association ended, or no accepted presentation context)" : String(format: "refused with status 0x%04X", s)
                        try journal.markSendFailed(r.id, error: why, delay: delay(afterAttempts: r.attempts))
                    }
                }
                log.info("pacs \(name): \(present.count - failed) of \(present.count) file(s) of study \(studies) stored" + (failed > 0 ? "; \(failed) to retry" : ""))
            } catch {
                let wait = delay(afterAttempts: present.map(\.attempts).max() ?? 0)
                for r in present { try journal.markSendFailed(r.id, error: "\(error)", delay: delay(afterAttempts: r.attempts)) }
                log.warning("pacs \(name): \(error); \(present.count) file(s) of study \(studies) wait, next try in \(Int(wait)) s")
            }
        }
        return sentAny
    }
}
