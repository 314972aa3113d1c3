import CardiacImaging
import Foundation
import Testing

@testable import Service

#if canImport(Glibc)
import Glibc
#endif

/// Inbox entries a careless or hostile user may drop: links to places outside the data folder,
/// FIFOs, odd names, identifiers in file names; and a second daemon on the same data folder.
@Suite(.serialized) struct HostileInboxTests {
    /// Every item below `dir` with its type, size, modification time and a digest of its bytes.
    static func snapshot(_ dir: String) -> [String] {
        FileTree.walk(dir).map { e in
            var st = stat()
            _ = lstat(dir + "/" + e.path, &st)
            var digest: UInt64 = 1469598103934665603
            if e.type == .file, let data = FileManager.default.contents(atPath: dir + "/" + e.path) {
                for b in data { digest = (digest ^ UInt64(b)) &* 1099511628211 }
            }
            return "\(e.path) \(e.type) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(digest)"
        }
    }

    struct Entry {
        var name: String
        var expect: String
        var type: EntryType
    }

    /// Builds the hostile entries in `dir` (links point into `outside`) and returns them with
    /// the phrase each reason must hold and the type the kept input must still have.
    static func make(in dir: String, outside: String) throws -> [Entry] {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func link(_ name: String, _ target: String) throws { try fm.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: target) }
        func fifo(_ path: String) throws { try #require(mkfifo(path, 0o644) == 0, "mkfifo \(path)") }
        var out: [Entry] = []
        try link("linked_cine.nii.gz", outside + "/cine.nii.gz")
        out.append(Entry(name: "linked_cine.nii.gz", expect: "symbolic link", type: .link))
        try link("passwd.nii.gz", outside + "/passwd")
        out.append(Entry(name: "passwd.nii.gz", expect: "symbolic link", type: .link))
        try link("linked_folder", outside + "/patient")
        out.append(Entry(name: "linked_folder", expect: "symbolic link", type: .link))
        try fm.createDirectory(atPath: dir + "/mixed", withIntermediateDirectories: true)
        try "notes".write(toFile: dir + "/mixed/notes.txt", atomically: false, encoding: .utf8)
        try link("mixed/cine.nii.gz", outside + "/cine.nii.gz")
        out.append(Entry(name: "mixed", expect: "'cine.nii.gz' is a symbolic link", type: .folder))
        try fifo(dir + "/pipe.nii.gz")
        out.append(Entry(name: "pipe.nii.gz", expect: "named pipe", type: .fifo))
        try fm.createDirectory(atPath: dir + "/fifo_study", withIntermediateDirectories: true)
        try fifo(dir + "/fifo_study/a.nii.gz")
        out.append(Entry(name: "fifo_study", expect: "named pipe", type: .folder))
        try "rm -rf".write(toFile: dir + "/-rf", atomically: false, encoding: .utf8)
        out.append(Entry(name: "-rf", expect: "not NIfTI", type: .file))
        try BadInputs.junk(300, seed: 3).write(to: URL(fileURLWithPath: dir + "/line\nbreak.nii"))
        out.append(Entry(name: "line\nbreak.nii", expect: "NIfTI", type: .file))
        // File names that are identifiers: the reason (for the person) names them, the log never does.
        try BadInputs.nifti(BadInputs.volume(nt: 3), dir + "/ident/Smith_Jane_MRN999_frame01.nii.gz")
        try BadInputs.nifti(BadInputs.volume(nt: 3), dir + "/ident/Smith_Jane_MRN999_frame02.nii.gz")
        out.append(Entry(name: "ident", expect: "Smith_Jane_MRN999_frame01.nii.gz", type: .folder))
        return out
    }

    /// Checks one finished entry: failed, reason readable (no vanished work/ paths), the input
    /// kept in failed/ as what it was (a link stays a link).
    static func checkFailed(_ h: ServiceHarness, _ e: Entry, states: [String: StudyState]) throws {
        #expect(states[e.name] == .failed, "\(e.name) ended \(String(describing: states[e.name]))")
        let dir = h.config.failedPath + "/" + Journal.stem(e.name)
        let reason = (try? String(contentsOfFile: dir + "/reason.txt", encoding: .utf8)) ?? ""
        #expect(reason.contains(e.expect), "\(e.name): expected '\(e.expect)' in:\n\(reason)")
        #expect(!reason.contains(h.config.workPath), "\(e.name): the reason quotes a work/ path:\n\(reason)")
        #expect(EntryType.of(dir + "/" + e.name) == e.type, "\(e.name): kept as \(String(describing: EntryType.of(dir + "/" + e.name)))")
    }

    @Test func linksFifosAndOddNamesFailWithReasonsAndNothingOutsideIsTouched() throws {
        let h = try ServiceHarness(quiet: 0.3)
        let outside = h.root + "/outside"
        let fm = FileManager.default
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        _ = try Fixtures.shortCine(11, to: outside + "/cine.nii.gz")
        try "root:x:0:0:root:/root:/bin/bash\n".write(toFile: outside + "/passwd", atomically: false, encoding: .utf8)
        let patient = try Fixtures.acdcPatient(12, into: outside)
        try fm.moveItem(atPath: patient, toPath: outside + "/patient")
        let before = Self.snapshot(outside)
        let src = h.root + "/src"
        let entries = try Self.make(in: src, outside: outside)
        _ = try Fixtures.shortCine(13, to: src + "/good.nii.gz")
        try h.start()
        // Renames, so that no entry is seen half made.
        for name in try fm.contentsOfDirectory(atPath: src) { try #require(rename(src + "/" + name, h.inbox + "/" + name) == 0) }
        let names = entries.map(\.name) + ["good.nii.gz"]
        #expect(try h.waitFinished(names, timeout: 120), "\(String(describing: try? h.states()))")
        #expect(h.stop())
        let states = try h.states()
        #expect(states["good.nii.gz"] == .done)
        for e in entries { try Self.checkFailed(h, e, states: states) }
        // Nothing was followed: the linked valid cine and patient were not segmented, and
        // nothing outside the data folder changed or went away.
        #expect(!fm.fileExists(atPath: h.config.outboxPath + "/linked_cine"))
        #expect(!fm.fileExists(atPath: h.config.outboxPath + "/linked_folder"))
        #expect(Self.snapshot(outside) == before)
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
        // No file name from inside a study reaches the log, nor a study's name.
        let log = h.logLines.all.joined(separator: "\n")
        for secret in ["Smith_Jane", "MRN999", "passwd", "linked_cine", "break.nii"] {
            #expect(!log.contains(secret), "the log names '\(secret)':\n\(log)")
        }
        for rec in try h.journal().studies() where rec.state == .failed {
            #expect(rec.reason?.contains(h.config.workPath) == false, "journal reason quotes work/: \(rec.reason ?? "")")
        }
    }

    /// The labels folder follows the same rules: a linked item (to a valid labelled folder
    /// outside) and an item holding a link are refused with the reason and kept as they were;
    /// nothing outside is read into the training store.
    @Test func linkedLabelledItemsAreRefusedNotFollowed() throws {
        let h = try ServiceHarness(quiet: 0.2)
        let fm = FileManager.default
        let outside = h.root + "/outside"
        let item = try RefitLoopTests().niftiPair(15, into: outside)
        let before = Self.snapshot(outside)
        try h.start()
        try fm.createSymbolicLink(atPath: h.config.labelsPath + "/linked_item", withDestinationPath: item)
        try fm.createDirectory(atPath: h.root + "/mixed", withIntermediateDirectories: true)
        try fm.copyItem(atPath: item + "/ed.nii.gz", toPath: h.root + "/mixed/ed.nii.gz")
        try fm.createSymbolicLink(atPath: h.root + "/mixed/ed_gt.nii.gz", withDestinationPath: item + "/ed_gt.nii.gz")
        #expect(rename(h.root + "/mixed", h.config.labelsPath + "/mixed_item") == 0)
        #expect(try waitFor(30) { try h.journal().labels().count == 2 })
        #expect(h.stop())
        for l in try h.journal().labels() {
            #expect(l.state == "rejected" && l.reason?.contains("symbolic link") == true, "\(l)")
        }
        #expect(EntryType.of(h.config.failedPath + "/labels/linked_item/linked_item") == .link)
        #expect(EntryType.of(h.config.failedPath + "/labels/mixed_item/mixed_item/ed_gt.nii.gz") == .link)
        #expect(try h.journal().pendingLabelledVolumes() == 0)
        #expect(Self.snapshot(outside) == before)
        let log = h.logLines.all.joined(separator: "\n")
        #expect(!log.contains("ed_gt") && !log.contains("mixed_item") && !log.contains("linked_item"), "\(log)")
    }

    /// An inbox on another file system (a tmpfs): entries are copied, not renamed, into work/;
    /// links inside are copied as links, never followed, and the study fails with its reason.
    @Test(.enabled(if: DaemonTests.canMountTmpfs, "needs root to mount a tmpfs as the inbox"))
    func anInboxOnAnotherFileSystemMovesLinksAsLinks() throws {
        let h = try ServiceHarness(quiet: 0.3)
        let fm = FileManager.default
        let outside = h.root + "/outside"
        try fm.createDirectory(atPath: outside, withIntermediateDirectories: true)
        _ = try Fixtures.shortCine(14, to: outside + "/cine.nii.gz")
        let before = Self.snapshot(outside)
        try fm.createDirectory(atPath: h.inbox, withIntermediateDirectories: true)
        try #require(try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", h.inbox]).status == 0)
        defer { _ = try? runTool("/bin/umount", ["-l", h.inbox]) }
        try h.start()
        try fm.createDirectory(atPath: h.inbox + "/.mixed", withIntermediateDirectories: true)
        try "notes".write(toFile: h.inbox + "/.mixed/notes.txt", atomically: false, encoding: .utf8)
        try fm.createSymbolicLink(atPath: h.inbox + "/.mixed/cine.nii.gz", withDestinationPath: outside + "/cine.nii.gz")
        try fm.moveItem(atPath: h.inbox + "/.mixed", toPath: h.inbox + "/mixed")
        _ = try Fixtures.shortCine(15, to: h.inbox + "/.good.nii.gz")
        try fm.moveItem(atPath: h.inbox + "/.good.nii.gz", toPath: h.inbox + "/good.nii.gz")
        #expect(try h.waitFinished(["mixed", "good.nii.gz"], timeout: 90), "\(String(describing: try? h.states()))")
        #expect(h.stop())
        let states = try h.states()
        #expect(states["good.nii.gz"] == .done)
        try Self.checkFailed(h, Entry(name: "mixed", expect: "symbolic link", type: .folder), states: states)
        let kept = h.config.failedPath + "/mixed/mixed"
        #expect(EntryType.of(kept + "/cine.nii.gz") == .link && EntryType.of(kept + "/notes.txt") == .file)
        #expect(Self.snapshot(outside) == before)
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
    }

    /// A full work folder (a 64 KiB tmpfs; the inbox on another file system): the study stays
    /// whole in the inbox, is tried again only after the back-off (one journal row, not one per
    /// scan, and no journal row, so that its output name stays its own), and completes once
    /// work/ has room.
    @Test(.enabled(if: DaemonTests.canMountTmpfs, "needs root to mount a small tmpfs as work/"))
    func aFullWorkFolderLeavesTheStudyInTheInboxAndRetriesLater() throws {
        let h = try ServiceHarness(quiet: 0.2) { $0.retryBackoff = 4; $0.retryBackoffMax = 4 }
        let fm = FileManager.default
        let work = h.config.workPath
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        try #require(try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", work]).status == 0)
        defer { _ = try? runTool("/bin/umount", ["-l", work]) }
        let src = h.root + "/src"
        try fm.createDirectory(atPath: src, withIntermediateDirectories: true)
        _ = try Fixtures.shortCine(17, to: src + "/p17.nii", frames: 2)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: src + "/p17.nii"))
        try #require(bytes.count > 128 << 10, "the study must not fit the 64 KiB work folder")
        try h.start()
        try dropIntoInbox(src + "/p17.nii", inbox: h.inbox, as: "p17.nii")
        let tried = { h.logLines.all.filter { $0.contains("could not be moved into the work folder") && $0.contains("stays in the inbox") }.count }
        #expect(try waitFor(20) { tried() >= 1 })
        usleep(2_500_000)  // many scans, within the back-off
        #expect(tried() == 1)
        #expect(try h.journal().studies().isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: h.inbox + "/p17.nii")) == bytes)
        #expect(try fm.contentsOfDirectory(atPath: work).isEmpty)
        try #require(try runTool("/bin/mount", ["-o", "remount,size=64m", work]).status == 0)
        #expect(try waitFor(60) { try h.journal().studies().contains { $0.state == .done } }, "\(h.logLines.all.joined(separator: "\n"))")
        #expect(h.stop())
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
        #expect(fm.fileExists(atPath: h.config.outboxPath + "/p17/provenance.json"))
    }

    /// A full journal file system (the journal on a 512 KiB tmpfs, filled up while the daemon
    /// runs): claiming fails in the journal, before anything moves, so the study stays in the
    /// inbox; the daemon says so, keeps running, and completes the study once there is room.
    @Test(.enabled(if: DaemonTests.canMountTmpfs, "needs root to mount a small tmpfs for the journal"))
    func aFullJournalLeavesTheStudyInTheInboxUntilThereIsRoom() throws {
        let fm = FileManager.default
        let jfs = try makeTempFolder("autosam-jfs")
        defer { removeTempFolder(jfs) }
        try #require(try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", jfs]).status == 0)
        defer { _ = try? runTool("/bin/umount", ["-l", jfs]) }
        let h = try ServiceHarness(quiet: 0.2) { $0.journal = jfs + "/journal.sqlite" }
        let src = h.root + "/src"
        try fm.createDirectory(atPath: src, withIntermediateDirectories: true)
        _ = try Fixtures.shortCine(18, to: src + "/p18.nii.gz", frames: 2)
        try h.start()
        #expect(try waitFor(30) { h.logLines.all.contains { $0.contains("ready in") } })
        // Fill the journal's file system.
        let filler = jfs + "/filler"
        _ = fm.createFile(atPath: filler, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
        while (try? handle.write(contentsOf: Data(count: 4096))) != nil {}
        try? handle.close()
        try dropIntoInbox(src + "/p18.nii.gz", inbox: h.inbox, as: "p18.nii.gz")
        #expect(try waitFor(20) { h.logLines.all.contains { $0.contains("loop:") } }, "\(h.logLines.all.suffix(5))")
        #expect(fm.fileExists(atPath: h.inbox + "/p18.nii.gz"), "the study left the inbox without a journal row")
        #expect(h.thread?.isExecuting == true)
        try fm.removeItem(atPath: filler)
        #expect(try h.waitFinished(["p18.nii.gz"], timeout: 60), "\(h.logLines.all.suffix(10).joined(separator: "\n"))")
        #expect(h.stop())
        #expect(try h.states() == ["p18.nii.gz": .done])
        #expect(try fm.contentsOfDirectory(atPath: h.inbox).isEmpty)
    }

    /// A read-only data folder (its folders made, then locked): the daemon refuses to start with
    /// a message naming what it cannot write, and changes nothing.
    @Test func aReadOnlyDataFolderStopsTheStartWithAReason() throws {
        let h = try ServiceHarness()
        let first = try ServiceDaemon(config: h.config, log: ServiceLog(level: .debug, environment: [:], sink: { _ in }))
        _ = first  // the folders and the journal exist now (the lock file is made by run())
        try lockFolder(h.config.data)
        defer { try? unlockFolder(h.config.data) }
        let daemon = try ServiceDaemon(config: h.config, log: ServiceLog(level: .debug, environment: [:], sink: { _ in }))
        daemon.requestStop()
        do {
            try daemon.run()
            Issue.record("the daemon ran on a read-only data folder")
        } catch {
            #expect("\(error)".contains("cannot open the lock file \(h.config.journalPath).lock"), "\(error)")
        }
    }

    @Test func aSecondDaemonOnTheSameDataFolderRefusesToStart() throws {
        let h = try ServiceHarness()
        try h.start()
        #expect(try waitFor(60) { h.logLines.all.contains { $0.contains("ready in") } })
        let second = try ServiceDaemon(config: h.config, log: ServiceLog(level: .debug, environment: [:], sink: { _ in }))
        second.requestStop()  // were the lock not to hold, run() would return at once rather than serve
        do {
            try second.run()
            Issue.record("a second daemon ran on the same data folder")
        } catch {
            #expect("\(error)".contains("another autosam daemon already serves this data folder (pid \(getpid()))"), "\(error)")
        }
        #expect(h.stop())
        // Released when the first one stops: the next daemon takes it.
        let lock = try DataFolderLock(journal: h.config.journalPath)
        lock.release()
    }
}
