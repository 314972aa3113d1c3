import AutoSAM
import CardiacImaging
import Foundation
import Testing

@testable import Service

func makeTempFolder(_ prefix: String = "autosam-svc") throws -> String {
    let d = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// Removes a test folder, lifting the immutable flag a read-only test may have set.
func removeTempFolder(_ path: String) {
    _ = try? runTool("/usr/bin/chattr", ["-R", "-i", path])
    try? FileManager.default.removeItem(atPath: path)
}

@discardableResult
func runTool(_ exe: String, _ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    if let environment { p.environment = environment }
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
func waitFor(_ timeout: Double, _ what: String = "", _ condition: () throws -> Bool) throws -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

/// Shared test fixtures: a small head trained on the demo encoder (made once per process) and
/// phantom studies.
enum Fixtures {
    static let seed: UInt64 = 11
    static let lock = NSLock()
    nonisolated(unsafe) static var headFolder: String?

    /// A linear head on the `demo` encoder, trained briefly on one phantom patient's ED/ES frames
    /// (what the service needs to run; its quality is not what these tests measure).
    static func head() throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let h = headFolder { return h }
        let t0 = Date()
        defer { FileHandle.standardError.write(Data("test head ready in \(Int(Date().timeIntervalSince(t0))) s\n".utf8)) }
        let root = try makeTempFolder("autosam-svc-head")
        let data = root + "/data"
        try acdcPatient(5, into: data)
        try acdcPatient(1, into: data)
        let enc = try FrozenEncoder(source: "demo")
        let plan = PreprocessingPlan.robust(encoderSize: enc.config.imageSize)
        let patients = try ACDCDataset.patients(in: data)
        let samples = try SliceData.samples(patients: patients, plan: plan, encoder: enc, cache: nil)
        let model = try Heads.make(.linear, inChannels: enc.config.outChannels, classes: 4, seed: 1)
        var options = TrainingOptions()
        options.epochs = 15
        options.learningRate = 1e-2
        options.patience = 15
        let reports = Trainer.fit(model, train: samples, validation: [], options: options)
        let meta = HeadMetadata(
            kind: .linear, classes: CardiacLabel.allCases.map(\.name), inChannels: enc.config.outChannels, encoder: enc.identity,
            encoderSize: enc.config.name, plan: plan, trainingPatients: patients.map(\.id), validationPatients: [],
            validationDice: reports.map(\.validationDice).max() ?? 0, epochs: reports.count, options: options,
            created: "test", software: "test")
        let dir = root + "/head"
        try HeadModel.save(model, metadata: meta, to: dir)
        headFolder = dir
        return dir
    }

    /// Slices kept of each phantom (mid-ventricular), so that tests stay quick.
    /// A model store with `versions` copies of the test head, the first one current.
    static func modelStore(_ root: String, versions: Int) throws -> ModelStore {
        let (head, meta) = try HeadModel.load(try Fixtures.head())
        let store = try ModelStore(root: root)
        for _ in 0..<versions {
            let metrics = ModelMetrics(
                created: meta.created, parent: nil, encoder: meta.encoder, headKind: meta.kind, trainingCases: meta.trainingPatients,
                trainingVolumes: 2, validationCases: meta.validationPatients, validation: nil, parentValidation: nil, tolerance: 0.01,
                epochs: meta.epochs, trainingSeconds: 1, decision: ModelDecision(status: .pending, reason: "test", date: meta.created))
            _ = try store.add(head: head, metadata: meta, metrics: metrics)
        }
        try store.promote("v0001")
        return store
    }

    static let keptSlices = 4

    /// Phantom patient n's cine and truth, rendered once per process.
    nonisolated(unsafe) static var phantoms: [Int: (Volume, PhantomTruth)] = [:]
    static let phantomLock = NSLock()
    static func phantom(_ n: Int) throws -> (cine: Volume, truth: PhantomTruth) {
        phantomLock.lock()
        defer { phantomLock.unlock() }
        if let p = phantoms[n] { return p }
        let tmp = try makeTempFolder("autosam-svc-ph")
        defer { removeTempFolder(tmp) }
        let truth = try PhantomGenerator.writePatient(number: n, seed: seed, outDir: tmp, cine: true)
        let cine = try NIfTI.read(tmp + String(format: "/patient%03d/patient%03d_4d.nii.gz", n, n))
        phantoms[n] = (cine, truth)
        return (cine, truth)
    }

    /// The grid of slices k0 ..< k0 + nz of `g`.
    static func subGrid(_ g: VolumeGeometry, k0: Int) -> VolumeGeometry {
        VolumeGeometry(spacing: g.spacing, origin: g.affine.apply(SIMD3(0, 0, Double(k0))), direction: g.direction)
    }

    /// Frames `frames` and slices k0 ..< k0 + nz of a cine (int16), on the matching sub-grid.
    static func crop(_ v: Volume, k0: Int, nz: Int, frames: [Int]) throws -> Volume {
        guard case .int16(let all) = v.data else { throw StudyError("phantom cine is not int16") }
        let plane = v.shape.nx * v.shape.ny, per = v.shape.voxelsPerFrame
        var data: [Int16] = []
        for t in frames { data += all[(t * per + k0 * plane)..<(t * per + (k0 + nz) * plane)] }
        return Volume(shape: GridShape(v.shape.nx, v.shape.ny, nz, frames.count), geometry: subGrid(v.geometry, k0: k0),
                      data: .int16(data), timing: frames.count > 1 ? v.timing : nil, descrip: "test phantom")
    }

    static func cropLabels(_ m: LabelMap, k0: Int, nz: Int) -> LabelMap {
        let plane = m.shape.nx * m.shape.ny
        return LabelMap(shape: GridShape(m.shape.nx, m.shape.ny, nz), geometry: subGrid(m.geometry, k0: k0),
                        labels: Array(m.labels[(k0 * plane)..<((k0 + nz) * plane)]))
    }

    static func firstSlice(_ v: Volume) -> Int { max(0, v.shape.nz / 2 - keptSlices / 2) }

    /// The slices a study keeps: the mid-ventricular `keptSlices`, or the whole stack.
    static func slices(_ v: Volume, all: Bool) -> (k0: Int, nz: Int) { all ? (0, v.shape.nz) : (firstSlice(v), keptSlices) }

    /// An ACDC patient folder `dir/<id>` (4 slices, or all of them, of the ED and ES frames,
    /// their ground truth, Info.cfg). Returns the folder.
    @discardableResult
    static func acdcPatient(_ n: Int, into dir: String, id: String? = nil, allSlices: Bool = false) throws -> String {
        let (cine, truth) = try phantom(n)
        let pid = id ?? String(format: "patient%03d", n)
        let folder = dir + "/" + pid
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let (k0, nz) = slices(cine, all: allSlices)
        for f in [truth.edFrame, truth.esFrame] {
            let img = try crop(cine, k0: k0, nz: nz, frames: [f - 1])
            let gt = cropLabels(PhantomGenerator.groundTruth(patient: n, seed: seed, frame: f - 1), k0: k0, nz: nz)
            try NIfTI.write(img, to: folder + "/" + ACDCPatient.frameName(pid, frame: f) + ".nii.gz")
            try NIfTI.write(LabelMap(shape: gt.shape, geometry: img.geometry, labels: gt.labels), to: folder + "/" + ACDCPatient.frameName(pid, frame: f) + "_gt.nii.gz")
        }
        let p = truth.parameters
        let info = ACDCInfo(ed: truth.edFrame, es: truth.esFrame, group: truth.group, heightCm: p.heightCm, weightKg: p.weightKg, frameCount: p.nt)
        try info.text.write(toFile: folder + "/Info.cfg", atomically: true, encoding: .utf8)
        return folder
    }

    /// Ground truth of frame t (0-based) of patient n, on the grid of the kept slices.
    static func groundTruth(_ n: Int, frame t: Int) throws -> LabelMap {
        let (cine, _) = try phantom(n)
        return cropLabels(PhantomGenerator.groundTruth(patient: n, seed: seed, frame: t), k0: firstSlice(cine), nz: keptSlices)
    }

    /// The frames a short cine keeps: ED, ES and some between (ED/ES come from the LV curve).
    static func shortFrames(_ truth: PhantomTruth, count: Int = 4) -> [Int] {
        let es = truth.esFrame - 1, nt = truth.parameters.nt
        return Array([0, es / 2, es, min(nt - 1, es + (nt - es) / 2), min(nt - 1, es + 1), max(1, es - 1)].prefix(count))
    }

    /// A short 4D cine NIfTI written to `path` (4 slices or all, `frames` frames); returns it as read back.
    @discardableResult
    static func shortCine(_ n: Int, to path: String, frames count: Int = 4, allSlices: Bool = false) throws -> Volume {
        let (cine, truth) = try phantom(n)
        let (k0, nz) = slices(cine, all: allSlices)
        let v = try crop(cine, k0: k0, nz: nz, frames: shortFrames(truth, count: count))
        try NIfTI.write(v, to: path)
        return try NIfTI.read(path)
    }

    /// A DICOM study `dir/<name>`: the short cine of patient n as classic MR files (one per
    /// slice and phase), plus a localiser series. Returns the cine written.
    @discardableResult
    static func dicomStudy(
        _ n: Int, into dir: String, name: String? = nil, frames count: Int = 4, allSlices: Bool = false
    ) throws -> (folder: String, cine: Volume) {
        let (full, truth) = try phantom(n)
        let (k0, nz) = slices(full, all: allSlices)
        let v = try crop(full, k0: k0, nz: nz, frames: shortFrames(truth, count: count))
        let folder = dir + "/" + (name ?? String(format: "patient%03d", n))
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let study = DicomUID.make(), series = DicomUID.make(), frameUID = DicomUID.make()
        let g = v.geometry
        let row = DicomGeometry.rasToLPS(g.direction[0]), col = DicomGeometry.rasToLPS(g.direction[1])
        let values = v.floats(), plane = v.shape.nx * v.shape.ny
        for t in 0..<v.shape.nt {
            for k in 0..<v.shape.nz {
                var m = DicomMRImage(sopInstanceUID: DicomUID.make(), studyInstanceUID: study, seriesInstanceUID: series,
                                     frameOfReferenceUID: frameUID, rows: v.shape.ny, columns: v.shape.nx)
                m.seriesDescription = "sa_cine"
                m.seriesNumber = 5
                m.instanceNumber = k * v.shape.nt + t + 1
                m.imagePosition = DicomGeometry.rasToLPS(g.affine.apply(SIMD3(0, 0, Double(k))))
                m.imageOrientation = (row, col)
                m.pixelSpacing = SIMD2(g.spacing.y, g.spacing.x)
                m.sliceThickness = g.spacing.z
                m.triggerTime = Double(t) * 40
                m.cardiacNumberOfImages = v.shape.nt
                m.patientID = "PHANTOM-\(n)"
                m.patientName = "Phantom^\(n)"
                m.patientSizeM = truth.parameters.heightCm / 100
                m.patientWeightKg = truth.parameters.weightKg
                let start = (t * v.shape.nz + k) * plane
                let px = values[start..<(start + plane)].map { UInt16(clamping: Int($0.rounded())) }
                try DicomMRWriter.write(m, pixels: px, to: folder + "/IM\(UUID().uuidString.prefix(8))")
            }
        }
        // A localiser the series rules must pass over.
        try BadInputs.dicom(folder + "/loc", slices: 3, phases: 1, description: "localizer")
        return (folder, v)
    }
}

/// A reference segmentation for the daemon (`ModelProvider.frameLabeller`): a frame of one of
/// the given phantom patients, recognised by its pixels (equal to a rendered frame's to within
/// rounding), gets that frame's ground-truth label map, on the frame's own grid. Anything else
/// is refused. It lets a test check everything after the head against phantom truth.
struct ReferenceLabeller: @unchecked Sendable {
    let frames: [(pixels: [Float], labels: [UInt8])]

    init(patients: [Int], frames which: (PhantomTruth) -> [Int]) throws {
        var frames: [(pixels: [Float], labels: [UInt8])] = []
        for n in patients {
            let (cine, truth) = try Fixtures.phantom(n)
            let per = cine.shape.voxelsPerFrame
            for t in Set(which(truth)) {
                frames.append((cine.floats(range: (t * per)..<((t + 1) * per)),
                               PhantomGenerator.groundTruth(patient: n, seed: Fixtures.seed, frame: t).labels))
            }
        }
        self.frames = frames
    }

    func label(_ frame: Volume) throws -> LabelMap {
        let px = frame.floats()
        guard let match = frames.first(where: { f in f.pixels.count == px.count && zip(f.pixels, px).allSatisfy { abs($0 - $1) <= 0.5 } })
        else { throw StudyError("the reference segmentation knows no phantom frame with these pixels") }
        return LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: match.labels)
    }
}

/// A test environment: a data folder, a configuration, and a daemon running on a thread.
final class ServiceHarness: @unchecked Sendable {
    let root: String
    var config: ServiceConfig
    var daemon: ServiceDaemon?
    var thread: Thread?
    let logLines = LogCollector()
    private let done = DispatchSemaphore(value: 0)

    init(quiet: Double = 0.4, configure: (inout ServiceConfig) -> Void = { _ in }) throws {
        root = try makeTempFolder()
        var c = ServiceConfig()
        c.data = root + "/data"
        c.encoder = "demo"
        c.head = try Fixtures.head()
        c.quietPeriod = quiet
        c.pollInterval = 0.1
        c.retryBackoff = 0.3
        c.retryBackoffMax = 1
        c.seriesRules.minPhases = 4
        c.logLevel = .debug
        configure(&c)
        config = c
    }

    var inbox: String { config.inboxPath }

    /// Starts the daemon; `frameLabeller` replaces the head's labelling of a frame.
    func start(environment: [String: String] = [:], frameLabeller: ((Volume) throws -> LabelMap)? = nil,
               prepare: (ServiceDaemon) -> Void = { _ in }) throws {
        let d = try ServiceDaemon(config: config, log: ServiceLog(level: .debug, environment: [:], sink: logLines.add),
                                  notifier: SystemdNotifier(environment: environment))
        d.models.frameLabeller = frameLabeller
        prepare(d)
        daemon = d
        let sem = done
        let t = Thread {
            do { try d.run() } catch { FileHandle.standardError.write(Data("daemon: \(error)\n".utf8)) }
            sem.signal()
        }
        t.stackSize = 8 << 20
        t.start()
        thread = t
    }

    /// Stops the daemon and waits for its loop to end.
    func stop(timeout: Double = 60) -> Bool {
        daemon?.requestStop()
        guard daemon != nil else { return true }
        let ok = done.wait(timeout: .now() + timeout) == .success
        daemon = nil
        return ok
    }

    func journal() throws -> Journal { try Journal(path: config.journalPath, readOnly: true) }

    func states() throws -> [String: StudyState] {
        Dictionary(try journal().studies().map { ($0.name, $0.state) }, uniquingKeysWith: { _, b in b })
    }

    /// Waits until the studies named are all done or failed.
    func waitFinished(_ names: [String], timeout: Double) throws -> Bool {
        try waitFor(timeout) {
            let s = try states()
            return names.allSatisfy { s[$0] == .done || s[$0] == .failed }
        }
    }

    deinit {
        _ = stop(timeout: 30)
        removeTempFolder(root)
    }
}

final class LogCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    /// A copy with a buffer of its own, made under the lock: a reader never shares the buffer
    /// that `add` grows (ThreadSanitizer reported the shared copy).
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines.map { $0 } }
}

/// Copies a folder into the inbox file by file, pausing between files (a slow network copy).
func slowCopy(_ from: String, to dest: String, pause: Double) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: dest, withIntermediateDirectories: true)
    for rel in try fm.subpathsOfDirectory(atPath: from).sorted() {
        var isDir: ObjCBool = false
        fm.fileExists(atPath: from + "/" + rel, isDirectory: &isDir)
        if isDir.boolValue {
            try fm.createDirectory(atPath: dest + "/" + rel, withIntermediateDirectories: true)
        } else {
            try fm.copyItem(atPath: from + "/" + rel, toPath: dest + "/" + rel)
            usleep(UInt32(pause * 1e6))
        }
    }
}

/// Drops a file or folder into an inbox in one step: copied under a hidden name, then renamed.
func dropIntoInbox(_ source: String, inbox: String, as name: String) throws {
    try FileManager.default.copyItem(atPath: source, toPath: inbox + "/." + name)
    try #require(rename(inbox + "/." + name, inbox + "/" + name) == 0)
}

/// The built `autosam` binary: `$AUTOSAM_BIN`, else beside the test bundle.
func autosamBinary() -> String? {
    if let b = ProcessInfo.processInfo.environment["AUTOSAM_BIN"], FileManager.default.isExecutableFile(atPath: b) { return b }
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("autosam").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    var d2 = URL(fileURLWithPath: exe).deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = d2.appendingPathComponent("autosam").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        d2 = d2.deletingLastPathComponent()
    }
    return nil
}
