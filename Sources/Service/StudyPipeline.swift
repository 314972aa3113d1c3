import AutoSAM
import CardiacImaging
import Foundation
import QC

/// An output could not be written (read-only or full outbox, ...): the study is kept and
/// tried again later, never archived or failed for it.
public struct OutputWriteError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The study was abandoned because the daemon is stopping.
public struct StopRequested: Error, CustomStringConvertible {
    public var description: String { "the daemon is stopping" }
}

/// The head that segments, with the version name outputs record.
public struct ServingModel {
    public var segmenter: Segmenter
    public var version: String
    /// Labels one frame, with where localisation centred its field and the head's uncertainty
    /// (nil where not measured): the segmenter's encoder and head, unless replaced
    /// (`ModelProvider.frameLabeller`).
    var labelFrame: (Volume) throws -> (labels: LabelMap, centerMM: SIMD2<Double>?, uncertainty: VolumeUncertainty?)

    public init(segmenter: Segmenter, version: String) {
        self.segmenter = segmenter
        self.version = version
        labelFrame = { let r = try segmenter.segmentLocated($0); return (r.labels, r.centerMM, r.uncertainty) }
    }
}

/// What a study produced, before it is written.
struct StudyProducts {
    var labels: [(name: String, volume: Volume)] = []
    var segs: [(name: String, labels: LabelMap, frame: Int)] = []
    var stats: Data
    var report: FunctionReport?
    var qc: Data?
    /// The QC picture's pixels and the (slice, frame) of the images it shows, for its DICOM
    /// copy (DICOM input only).
    var qcPicture: (rgb: [UInt8], width: Int, height: Int, shown: [(slice: Int, frame: Int)])?
    var qcError: String?
    /// Every ED and ES slice for the review page (`SliceStrips`), with their slices.json.
    var strips: [SliceStrips.Strip] = []
    var stripIndex: Data?
    var edFrame: Int?
    var esFrame: Int?
    var segmentedFrames: [Int]
    var timings: [String: Double]
    /// Where localisation centred each segmented frame's field (1-based frame -> [x, y] mm).
    var fieldCentersMM: [String: [Double]] = [:]
    /// The head's uncertainty and the review flag (nil where the labeller measures none).
    var review: ReviewInfo?
}

/// How unsure the head was on a study, and whether it asks for a person's review: each
/// segmented frame's score (entropy per heart pixel, `VolumeUncertainty.score`) and its
/// slices' entropy and heart pixels; the study's score is its ED and ES frames' largest (every
/// segmented frame's for a study without ED/ES). `review` is true above the configured
/// threshold (`[segmentation] review_uncertainty`).
struct ReviewInfo: Codable, Equatable {
    var uncertainty: Double
    var threshold: Double
    var review: Bool
    /// 1-based frame -> score.
    var frames: [String: Double]
    /// 1-based frame -> one entry per slice.
    var slices: [String: [SliceUncertainty]]

    init?(_ perFrame: [Int: VolumeUncertainty], keyFrames: [Int], threshold: Double) {
        guard !perFrame.isEmpty else { return nil }
        frames = Dictionary(uniqueKeysWithValues: perFrame.map { (String($0.key + 1), $0.value.score) })
        slices = Dictionary(uniqueKeysWithValues: perFrame.map { (String($0.key + 1), $0.value.slices) })
        let keys = keyFrames.filter { perFrame[$0] != nil }
        uncertainty = (keys.isEmpty ? Array(perFrame.keys) : keys).map { perFrame[$0]!.score }.max()!
        self.threshold = threshold
        review = uncertainty > threshold
    }
}

/// Runs one study: read, segment the frames, stats, QC picture, provenance; then writes the
/// outputs into a staging folder inside the outbox and renames it into place.
enum StudyPipeline {
    /// Segments and measures. Throws `StudyError` (or an imaging error) for bad input,
    /// `StopRequested` when `shouldStop` turns true between frames.
    static func compute(
        input: StudyInput, model: ServingModel, frames selection: FrameSelection, heartbeat: () -> Void,
        shouldStop: () -> Bool, subject: String, reviewThreshold: Double
    ) throws -> StudyProducts {
        var timings: [String: Double] = [:]
        let t0 = Date()
        let nt = input.frameCount
        let cine = nt > 1
        // Which frames to segment.
        var toSegment: [Int]
        if !cine {
            toSegment = [0]
        } else if let e = input.edES, selection == .edES {
            toSegment = Array(Set([e.ed, e.es])).sorted()
        } else if !input.keyFrames.isEmpty {
            toSegment = input.keyFrames.keys.sorted()
        } else {
            toSegment = Array(0..<nt)
        }
        var maps: [Int: LabelMap] = [:], centers: [String: [Double]] = [:], uncertainty: [Int: VolumeUncertainty] = [:]
        for t in toSegment {
            if shouldStop() { throw StopRequested() }
            let (map, center, u) = try model.labelFrame(try input.frame(t))
            maps[t] = map
            if let center { centers[String(t + 1)] = [center.x, center.y] }
            if let u { uncertainty[t] = u }
            heartbeat()
        }
        timings["segment_s"] = Date().timeIntervalSince(t0)
        let t1 = Date()
        var p = StudyProducts(stats: Data(), segmentedFrames: toSegment.map { $0 + 1 }, timings: [:])
        p.fieldCentersMM = centers
        if !cine {
            let map = maps[0]!
            p.labels.append(("labels.nii.gz", map.volume))
            let vols = ClinicalStats.volumes(map)
            p.review = ReviewInfo(uncertainty, keyFrames: [0], threshold: reviewThreshold)
            p.stats = try sortedJSONData(SingleFrameStats(subject: subject, volumes: vols, sliceAreas: ClinicalStats.sliceAreas(map), review: p.review))
        } else {
            let ed: Int, es: Int
            var phases: PhaseSelection?
            if let e = input.edES {
                (ed, es) = e
            } else {
                let ordered = toSegment.map { maps[$0]! }
                let sel = try ClinicalStats.selectPhases(frames: ordered)
                ed = toSegment[sel.edFrame]
                es = toSegment[sel.esFrame]
                phases = PhaseSelection(lvVolumes: sel.lvVolumes, edFrame: ed + 1, esFrame: es + 1)
            }
            let edMap = maps[ed]!, esMap = maps[es]!
            let report = try ClinicalStats.report(
                ed: edMap, es: esMap, heightCm: input.heightCm, weightKg: input.weightKg, subject: subject,
                edFrame: ed + 1, esFrame: es + 1)
            p.report = report
            p.edFrame = ed + 1
            p.esFrame = es + 1
            p.labels.append(("labels_ed.nii.gz", edMap.volume))
            p.labels.append(("labels_es.nii.gz", esMap.volume))
            if selection == .all && toSegment.count == nt && nt > 1 {
                var all = [UInt8]()
                all.reserveCapacity(edMap.labels.count * nt)
                for t in 0..<nt { all += maps[t]!.labels }
                var v = Volume(shape: GridShape(edMap.shape.nx, edMap.shape.ny, edMap.shape.nz, nt), geometry: edMap.geometry,
                               data: .uint8(all), timing: input.image.timing, descrip: "autosam labels")
                v.niftiVersion = input.image.niftiVersion
                p.labels.append(("labels_all.nii.gz", v))
            }
            if input.dicom != nil {
                p.segs.append(("seg_ed.dcm", edMap, ed))
                p.segs.append(("seg_es.dcm", esMap, es))
            }
            p.review = ReviewInfo(uncertainty, keyFrames: [ed, es], threshold: reviewThreshold)
            p.stats = try sortedJSONData(CineStats(report: report, phaseSelection: phases, frameNumbering: "1-based", review: p.review))
            timings["stats_s"] = Date().timeIntervalSince(t1)
            let t2 = Date()
            do {
                let r = try QCPicture.render(
                    edImage: try input.frame(ed), edLabels: edMap, esImage: try input.frame(es), esLabels: esMap, report: report,
                    annotations: QCPicture.Annotations(modelVersion: model.version, date: ISO8601DateFormatter().string(from: Date())))
                p.qc = r.png
                if input.dicom != nil {
                    p.qcPicture = (r.rgb, r.width, r.height, r.panels.map { ($0.slice, $0.phase == "ED" ? ed : es) })
                }
                let s = try SliceStrips.render(
                    edImage: try input.frame(ed), edLabels: edMap, esImage: try input.frame(es), esLabels: esMap, edFrame: ed + 1, esFrame: es + 1)
                p.strips = s.strips
                p.stripIndex = try sortedJSONData(s.index)
            } catch {
                // The pictures are an aid; a study is not failed for them, and the reason is recorded.
                p.qcError = "\(error)"
            }
            timings["qc_s"] = Date().timeIntervalSince(t2)
        }
        p.timings = timings
        return p
    }

    /// Writes everything into `outbox/.staging-<id>/`, then renames it to `outbox/<name>/`.
    /// Every failure here is an `OutputWriteError` (the study will be retried).
    static func publish(
        _ p: StudyProducts, input: StudyInput, provenance: Provenance, staging: String, final: String,
        fence: (() throws -> Void) throws -> Void = { try $0() }
    ) throws {
        let fm = FileManager.default
        func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw OutputWriteError("\(what): \(error)") }
        }
        if fm.fileExists(atPath: staging) { try wrap("removing an old staging folder") { try fm.removeItem(atPath: staging) } }
        try wrap("creating \(staging)") { try fm.createDirectory(atPath: staging, withIntermediateDirectories: false) }
        for (name, v) in p.labels {
            try wrap("writing \(name)") { try NIfTI.write(v, to: staging + "/" + name, compression: v.shape.nt > 1 ? 1 : 0) }
        }
        if let cine = input.dicom {
            for s in p.segs {
                do { try DicomSegWriter.write(s.labels, frame: s.frame, of: cine, to: staging + "/" + s.name) } catch let e as DicomError {
                    if case .writeFailed = e { throw OutputWriteError("writing \(s.name): \(e)") }
                    throw StudyError("cannot make the DICOM SEG \(s.name): \(e)")
                }
            }
            try publishDicomResults(p, cine: cine, provenance: provenance, staging: staging)
        }
        try wrap("writing stats.json") { try AtomicFile.write(p.stats, to: staging + "/stats.json") }
        if let qc = p.qc { try wrap("writing qc.png") { try AtomicFile.write(qc, to: staging + "/qc.png") } }
        for strip in p.strips { try wrap("writing \(strip.name)") { try AtomicFile.write(strip.png, to: staging + "/" + strip.name) } }
        if let index = p.stripIndex { try wrap("writing slices.json") { try AtomicFile.write(index, to: staging + "/slices.json") } }
        try wrap("writing provenance.json") { try AtomicFile.write(try sortedJSONData(provenance), to: staging + "/provenance.json") }
        try wrap("syncing the outputs") { try syncDirectory(staging) }
        FaultInjection.point("publish.staged")
        // `fence`: with a shared queue, the rename happens only while this worker still holds
        // the study, so that a worker whose lease lapsed never publishes.
        try fence {
            if fm.fileExists(atPath: final) {
                // Never replaced: it is not this study's (whose outputs would have been found before).
                throw StudyError("the output folder \(final) exists already and belongs to something else")
            }
            guard rename(staging, final) == 0 else {
                throw OutputWriteError("renaming the outputs into \(final): \(String(cString: strerror(errno)))")
            }
        }
        try wrap("syncing the outbox") { try syncDirectory((final as NSString).deletingLastPathComponent) }
    }
}

/// The DICOM results beside the SEGs: the measurement report (SR, TID 1500) referencing the ED
/// and ES SEGs, and the QC picture (when it could be drawn) as a secondary capture. A failed
/// write is retried as every output's is; any other failure fails the study, as a SEG's does.
private func publishDicomResults(_ p: StudyProducts, cine: DicomCine, provenance: Provenance, staging: String) throws {
    guard let report = p.report, p.segs.count == 2 else { return }
    var sr = DicomSROptions()
    sr.modelName = "autosam head \(provenance.head.version)"
    sr.algorithmParameters = ["head \(provenance.head.version) (\(provenance.head.kind))",
                              "encoder \(provenance.encoder.name) \(provenance.encoder.sha256.map { "sha256:" + $0 } ?? provenance.encoder.identity)"]
    do {
        try DicomSRWriter.write(report, of: cine, edSeg: staging + "/" + p.segs[0].name, esSeg: staging + "/" + p.segs[1].name,
                                to: staging + "/sr.dcm", options: sr)
    } catch let e as DicomError {
        if case .writeFailed = e { throw OutputWriteError("writing sr.dcm: \(e)") }
        throw StudyError("cannot make the DICOM SR: \(e)")
    }
    if let q = p.qcPicture {
        do {
            try DicomPictureWriter.write(rgb: q.rgb, width: q.width, height: q.height, of: cine, shown: q.shown, to: staging + "/qc.dcm")
        } catch let e as DicomError {
            if case .writeFailed = e { throw OutputWriteError("writing qc.dcm: \(e)") }
            throw StudyError("cannot make the DICOM QC picture: \(e)")
        }
    }
}

/// Stats of a cine study: the function report and, when ED/ES were picked from the LV volume
/// curve, that curve.
struct CineStats: Codable {
    var report: FunctionReport
    var phaseSelection: PhaseSelection?
    var frameNumbering: String
    var review: ReviewInfo?
}

/// Stats of a single 3D frame (no ED/ES pair, so no function measures).
struct SingleFrameStats: Codable {
    var subject: String
    var volumes: StructureVolumes
    var sliceAreas: [SliceAreas]
    var review: ReviewInfo?
}

/// Where an output came from.
public struct Provenance: Codable, Sendable {
    public var journalId: Int64
    public var study: String
    public var kind: String
    public var attempt: Int
    public var software: String
    public var encoder: EncoderInfo
    public var head: HeadInfo
    public var plan: PreprocessingPlan
    public var frames: FramesInfo
    public var timings: [String: Double]
    public var inputFiles: Int
    public var processedAt: String
    public var outputs: [String]
    public var qcError: String?
    /// Where the plan's localisation centred the field of each segmented frame: 1-based frame
    /// -> [x, y] in mm from the slice centre along the image's i and j axes. Absent when the
    /// head does not localise (or found no heart and kept the slice centre).
    public var fieldCentersMM: [String: [Double]]?
    /// The head's uncertainty (the study's score) and whether the study was flagged for review;
    /// absent where not measured.
    public var uncertainty: Double?
    public var review: Bool?

    public struct EncoderInfo: Codable, Sendable {
        public var name: String
        /// "<size> <sha256 of the checkpoint>", or "random <size> seed 1" for the embedded encoder.
        public var identity: String
        public var sha256: String?
        /// The precision the products ran in, the one configured, and why they differ (bf16 asked
        /// for on a CPU without it runs in fp32). Absent in provenance written before they existed.
        public var precision: String?
        public var precisionRequested: String?
        public var precisionNote: String?
        /// The CPU's vector and matrix extensions (CPUCapabilities.features).
        public var cpu: String?
    }

    public struct HeadInfo: Codable, Sendable {
        public var version: String
        public var kind: String
        public var trainedOn: [String]
        public var validationDice: Double
    }

    public struct FramesInfo: Codable, Sendable {
        public var count: Int
        public var segmented: [Int]
        public var ed: Int?
        public var es: Int?
        public var edESFrom: String
        public var numbering: String
    }
}

func sortedJSONData<T: Encodable>(_ value: T) throws -> Data {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
    enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    return try enc.encode(value)
}

/// fsync on a folder, so a rename inside it survives a power cut.
func syncDirectory(_ path: String) throws {
    let fd = open(path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw OutputWriteError("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw OutputWriteError("cannot sync \(path): \(String(cString: strerror(errno)))") }
}
