import AutoSAM
import CardiacImaging
import Foundation
import Hummingbird
import QC
import Service
import ZIPFoundation

/// One study as the review page lists it: its journal row and what its stats.json says.
struct StudyRow: Sendable {
    var record: StudyRecord
    var summary: StudySummary?
}

/// The part of a study's stats.json the pages show (cine or single frame).
struct StudySummary: Decodable, Sendable {
    struct Review: Decodable, Sendable {
        var uncertainty: Double
        var threshold: Double
        var review: Bool
    }
    var report: FunctionReport?
    var phaseSelection: PhaseSelection?
    var review: Review?
    /// A single frame's (no ED/ES pair).
    var volumes: StructureVolumes?
    var sliceAreas: [SliceAreas]?
}

/// Reads what the daemon wrote, never writing any of it: the journal (read-only, WAL readers
/// do not block the daemon's writer) and the outbox. Files are only ever opened by names this
/// code chooses, inside the folder the journal names for a study, and never through a link.
final class ReviewData: @unchecked Sendable {
    let config: ServiceConfig
    private let lock = NSLock()
    private var journal: (any StudyJournal)?
    /// stats.json of finished studies, by journal id, with the file's modification time.
    private var summaries: [Int64: (mtime: Double, summary: StudySummary?)] = [:]

    init(config: ServiceConfig) { self.config = config }

    /// The journal, opened read-only once it exists (the daemon creates it).
    func openJournal() throws -> any StudyJournal {
        lock.lock()
        defer { lock.unlock() }
        if let journal { return journal }
        let j = try Service.openJournal(config, readOnly: true)
        journal = j
        return j
    }

    func studies() throws -> [StudyRow] {
        let records = try openJournal().studies()
        return records.map { StudyRow(record: $0, summary: $0.state == .done ? summary($0) : nil) }
    }

    func study(_ id: Int64) throws -> StudyRow? {
        guard let r = try openJournal().study(id) else { return nil }
        return StudyRow(record: r, summary: r.state == .done ? summary(r) : nil)
    }

    /// The study's stats.json summary, cached while the file's modification time stays.
    func summary(_ r: StudyRecord) -> StudySummary? {
        guard let path = outputFile(r, "stats.json"), let mtime = Self.regularFileMTime(path) else { return nil }
        lock.lock()
        if let c = summaries[r.id], c.mtime == mtime { lock.unlock(); return c.summary }
        lock.unlock()
        let s = FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(StudySummary.self, from: $0) }
        lock.lock()
        summaries[r.id] = (mtime, s)
        lock.unlock()
        return s
    }

    /// The files of a study's outbox folder the page may serve, with their content types.
    static let servable: [String: String] = [
        "qc.png": "image/png",
        "slices_ed.png": "image/png", "contours_ed.png": "image/png",
        "slices_es.png": "image/png", "contours_es.png": "image/png",
        "stats.json": "application/json", "provenance.json": "application/json",
        "labels_ed.nii.gz": "application/gzip", "labels_es.nii.gz": "application/gzip",
    ]

    /// The "annotate next" candidates from the cached summaries: done studies with an
    /// uncertainty whose name no labelled item carries (`Suggestions.candidates` reads the
    /// same from disk for `autosam suggest`).
    func suggestionCandidates() throws -> [Suggestions.Candidate] {
        let labelled = Set(try openJournal().labels().map(\.name))
        return try studies().compactMap { row in
            let r = row.record
            guard r.state == .done, !labelled.contains(r.name), !labelled.contains(r.outputName),
                  let s = row.summary, let u = s.review?.uncertainty else { return nil }
            return Suggestions.candidate(id: r.id, name: r.outputName, uncertainty: u, report: s.report, volumes: s.volumes, slices: s.sliceAreas?.count)
        }
    }

    /// The path of one of a study's output files, or nil: only names in `servable`, only a
    /// regular file (no link, no device) inside `outbox/<output name>/`, where the output name
    /// is the journal's and is a plain folder name.
    func outputFile(_ r: StudyRecord, _ name: String) -> String? {
        guard Self.servable[name] != nil, Self.plainName(r.outputName) else { return nil }
        let folder = config.outboxPath + "/" + r.outputName
        var st = stat()
        guard lstat(folder, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        let path = folder + "/" + name
        guard Self.regularFileMTime(path) != nil else { return nil }
        return path
    }

    static func plainName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\0")
    }

    /// The modification time of a regular file (not followed through a link), else nil.
    static func regularFileMTime(_ path: String) -> Double? {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
    }

    /// slices.json of a study, when its strips were made.
    func sliceIndex(_ r: StudyRecord) -> SliceStrips.Index? {
        guard let p = outputFile(r, "stats.json").map({ ($0 as NSString).deletingLastPathComponent + "/slices.json" }),
              Self.regularFileMTime(p) != nil, let d = FileManager.default.contents(atPath: p) else { return nil }
        return try? JSONDecoder().decode(SliceStrips.Index.self, from: d)
    }

    /// A done study's archived input as a ZIP (its regular files only; links, devices and
    /// anything else are left out, never followed), or nil where the input is not archived.
    /// The archive holds `archive/<name>`, or `archive/<id>-<name>` when the name was taken.
    func inputArchive(_ r: StudyRecord) throws -> Data? {
        guard Self.plainName(r.name) else { return nil }
        let root = [config.archivePath + "/\(r.id)-" + r.name, config.archivePath + "/" + r.name].first { p in
            var st = stat()
            return lstat(p, &st) == 0 && ((st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFDIR)
        }
        guard let root else { return nil }
        var files: [(inZip: String, path: String, size: Int64)] = []
        var st = stat()
        _ = lstat(root, &st)
        if (st.st_mode & S_IFMT) == S_IFREG {
            files = [(r.name, root, Int64(st.st_size))]
        } else {
            func visit(_ rel: String, depth: Int) {
                let dir = rel.isEmpty ? root : root + "/" + rel
                guard depth < 16, let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
                for name in names.sorted() {
                    let relName = rel.isEmpty ? name : rel + "/" + name
                    var s = stat()
                    guard lstat(root + "/" + relName, &s) == 0 else { continue }
                    if (s.st_mode & S_IFMT) == S_IFREG { files.append((r.name + "/" + relName, root + "/" + relName, Int64(s.st_size))) }
                    if (s.st_mode & S_IFMT) == S_IFDIR { visit(relName, depth: depth + 1) }
                }
            }
            visit("", depth: 0)
        }
        guard files.map(\.size).reduce(0, +) <= 2 << 30 else { throw HTTPError(.contentTooLarge, message: "the input is larger than 2 GB; take it from the archive folder") }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("autosam-input-\(UUID().uuidString).zip")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let zip = try Archive(url: tmp, accessMode: .create)
        for f in files {
            guard let handle = FileHandle(forReadingAtPath: f.path) else { continue }
            defer { try? handle.close() }
            try zip.addEntry(with: f.inZip, type: .file, uncompressedSize: f.size, compressionMethod: .deflate) { position, size in
                try handle.seek(toOffset: UInt64(position))
                return handle.readData(ofLength: size)
            }
        }
        return try Data(contentsOf: tmp)
    }

    /// The model store's versions (newest first) and the current one.
    func models() -> (versions: [ModelMetrics], current: String?, error: String?) {
        guard FileManager.default.fileExists(atPath: config.modelsPath) else { return ([], nil, nil) }
        do {
            let store = try ModelStore(root: config.modelsPath)
            let current = try store.current()
            let versions = try store.versions().reversed().compactMap { try? store.metrics($0) }
            return (versions, current, nil)
        } catch {
            return ([], nil, "\(error)")
        }
    }
}

