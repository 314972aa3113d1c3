import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

/// What a run leaves in summary.json besides the table.
public struct ExperimentSummary: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var fold: Int
        public var method: String
        public var volumes: Int
        public var trainingSlices: Int
        public var validationSlices: Int
        public var epochs: Int
        public var bestValidationDice: Double?
        public var trainSeconds: Double
        public var evaluateSeconds: Double
        public var meanDice: Double
    }

    public var config: ExperimentConfig
    public var encoder: String
    public var plan: PreprocessingPlan
    public var split: ExperimentSplit
    public var table: [TableRow]
    public var runs: [Run]
    public var seconds: Double
    public var cache: [String: Int]
    public var software: String
    public var created: String
    public var complete: Bool
}

/// The paper's protocol on an ACDC-layout folder: every head x training-volume count x fold
/// trained with `Trainer.fit` on cached embeddings (the same path as `autosam fit`), the UNet
/// baseline trained the same way on the slices themselves, the box-prompt baseline zero-shot;
/// every method segments the same test volumes (ED and ES) through the same inference path
/// as `autosam segment`, scored with `SegmentationMetrics` in physical units.
public final class ExperimentRunner {
    public let config: ExperimentConfig
    public let data: String
    public let out: String
    public let cacheFolder: String
    let log: (String) -> Void

    public init(config: ExperimentConfig, data: String, out: String, cache: String, log: @escaping (String) -> Void = { print($0) }) {
        self.config = config
        self.data = data
        self.out = out
        self.cacheFolder = cache
        self.log = log
    }

    /// The dataset's patients, each checked to have ED and ES ground truth.
    public static func labelledPatients(_ folder: String) throws -> [ACDCPatient] {
        let all = try ACDCDataset.patients(in: folder)
        for p in all {
            for f in [p.info.ed, p.info.es] where !p.hasLabels(frame: f) {
                throw ExperimentError.missingGroundTruth(
                    patient: p.id, frame: f, path: URL(fileURLWithPath: p.labelPath(frame: f)).lastPathComponent)
            }
        }
        return all
    }

    /// The encoder's preprocessing: the same plan `autosam fit` uses (its augmented training
    /// views included when `augment` is set, as `autosam fit` does). Its samples stay raw
    /// (no embedding statistics); each head completes its own plan (`HeadSetup.plan`).
    public static func plan(for encoder: FrozenEncoder, views: Int? = nil, elasticMM: Double? = nil) -> PreprocessingPlan {
        .robust(encoderSize: encoder.config.imageSize, views: views, elasticMM: elasticMM)
    }

    /// The experiment's options that every method's plan shares.
    func configured(_ plan: PreprocessingPlan) -> PreprocessingPlan {
        var p = plan
        p.testTimeRotations = config.testRotations
        p.augmentation?.tissueContrast = config.tissueContrast
        p.augmentation?.shading = config.shading
        if config.localize { p.localization = Localization() }
        return p
    }

    struct TestVolume {
        var patient: String
        var frame: Int
        var image: Volume
        var labels: LabelMap
    }

    @discardableResult
    public func run() throws -> ExperimentSummary {
        try config.validate()
        let started = Date()
        let patients = try Self.labelledPatients(data)
        let trainingMethods = config.methods.filter(\.trains)
        let maxVolumes = trainingMethods.isEmpty ? 0 : config.volumes.max()!
        let split = try ExperimentSplit.make(
            patients: patients.map(\.id), test: config.testPatients, folds: config.folds, maxVolumes: maxVolumes,
            validation: trainingMethods.isEmpty ? 0 : config.validationPatients, seed: config.seed,
            groups: config.stratify ? Dictionary(uniqueKeysWithValues: patients.map { ($0.id, $0.info.group) }) : nil)
        let byID = Dictionary(uniqueKeysWithValues: patients.map { ($0.id, $0) })
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        let encoder = try FrozenEncoder(source: config.encoder)
        for kind in config.heads { try HeadSetup.checkGrid(kind, config: encoder.config) }  // before any work
        let plan = configured(Self.plan(for: encoder, views: config.views, elasticMM: config.elasticMM))
        let cache = try EmbeddingCache(folder: cacheFolder)
        let needsDecoder = config.heads.contains(.autosam) || config.boxPrompt
        let samTensors = needsDecoder ? try encoder.samTensors() : [:]
        log("experiment: \(patients.count) patients; test \(split.test.count); \(config.folds) fold(s) of \(maxVolumes) training + \(trainingMethods.isEmpty ? 0 : config.validationPatients) validation; methods \(config.methods.map(\.name).joined(separator: ",")); encoder \(encoder.config.name)")

        var tests: [TestVolume] = []
        for id in split.test {
            let p = byID[id]!
            for f in Set([p.info.ed, p.info.es]).sorted() {
                let (image, labels) = try p.labelledFrame(f)
                try labels.validate(maxClass: 3)
                tests.append(TestVolume(patient: id, frame: f, image: image, labels: labels))
            }
        }

        var results: [VolumeResult] = []
        var runs: [ExperimentSummary.Run] = []
        func write(complete: Bool) throws {
            let table = ExperimentTable.rows(results)
            try AtomicFile.write(Data(ExperimentTable.csv(results).utf8), to: out + "/results.csv")
            let header = "# AutoSAM experiment\n\nEncoder `\(encoder.identity)`; \(config.folds) fold(s); \(split.test.count) test patients (\(tests.count) volumes, ED + ES); values are mean ± sample std over folds of the per-fold mean over test volumes (Dice in %, ASSD in mm).\(complete ? "" : " **Incomplete: the run is still going or was stopped.**")\n\n"
            try AtomicFile.write(Data((header + ExperimentTable.markdown(table)).utf8), to: out + "/table.md")
            let summary = ExperimentSummary(
                config: config, encoder: encoder.identity, plan: plan, split: split, table: table, runs: runs,
                seconds: Date().timeIntervalSince(started), cache: ["hits": cache.hits, "computed": cache.misses, "repaired": cache.repaired],
                software: "autosam \(BuildInfo.version)", created: ISO8601DateFormatter().string(from: Date()), complete: complete)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try AtomicFile.write(try enc.encode(summary), to: out + "/summary.json")
        }

        func evaluate(_ method: ExperimentMethod, fold: Int, volumes: Int, _ segment: (TestVolume) throws -> LabelMap) throws -> (Double, Double) {
            let start = Date()
            var sum = 0.0
            for t in tests {
                let m = try SegmentationMetrics.evaluate(prediction: try segment(t), reference: t.labels)
                let r = VolumeResult(fold: fold, method: method.name, volumes: volumes, patient: t.patient, frame: t.frame, metrics: m)
                results.append(r)
                sum += r.meanDice
            }
            return (sum / Double(max(1, tests.count)), Date().timeIntervalSince(start))
        }

        // Work units for the time estimate: a training run costs about its volume count.
        let totalUnits = Double(config.folds * config.volumes.reduce(0, +) * trainingMethods.count)
        var doneUnits = 0.0, trainingSeconds = 0.0, jobsDone = 0
        let jobs = config.folds * config.volumes.count * trainingMethods.count + (config.boxPrompt ? 1 : 0)
        func progress(_ what: String, units: Double, seconds: Double) {
            jobsDone += 1
            doneUnits += units
            trainingSeconds += seconds
            let elapsed = Date().timeIntervalSince(started)
            let left = doneUnits > 0 ? trainingSeconds / doneUnits * (totalUnits - doneUnits) : .nan
            log(String(format: "[%d/%d] %@; elapsed %@, ~%@ left", jobsDone, jobs, what, Self.duration(elapsed), left.isFinite ? Self.duration(left) : "?"))
        }

        if config.boxPrompt {
            let box = try BoxPromptBaseline(encoder: encoder, sam: samTensors, plan: plan, cache: cache)
            let (md, secs) = try evaluate(.boxPrompt, fold: 0, volumes: 0) { try box.segment($0.image, reference: $0.labels) }
            runs.append(.init(fold: 0, method: "box", volumes: 0, trainingSlices: 0, validationSlices: 0, epochs: 0, bestValidationDice: nil,
                              trainSeconds: 0, evaluateSeconds: secs, meanDice: md))
            try write(complete: false)
            progress(String(format: "box prompts (zero-shot, GT boxes): mean Dice %.3f", md), units: 0, seconds: 0)
        }

        for fold in split.folds {
            let seed = config.seed &+ UInt64(fold.index)
            for v in config.volumes {
                let trainP = fold.train(volumes: v).map { byID[$0]! }, valP = fold.validation.map { byID[$0]! }
                var options = TrainingOptions()
                options.epochs = config.epochs
                options.patience = config.patience
                options.minimumEpochSamples = config.epochSamples
                options.seed = seed
                var embedded: (train: [TrainingSample], val: [TrainingSample])?
                for method in trainingMethods {
                    let model: SegmentationHead
                    var train: [TrainingSample], val: [TrainingSample]
                    var headPlan = plan
                    switch method {
                    case .head(let kind):
                        if embedded == nil {
                            embedded = (try SliceData.samples(patients: trainP, plan: plan, encoder: encoder, cache: cache, augment: config.augment),
                                        try SliceData.samples(patients: valP, plan: plan, encoder: encoder, cache: cache))
                        }
                        (train, val) = embedded!
                        // The shared samples are raw; each head standardises its own copy.
                        headPlan = configured(HeadSetup.plan(for: encoder, head: kind, views: config.views, elasticMM: config.elasticMM))
                        SliceData.standardizeForTraining(train: &train, validation: &val, plan: &headPlan)
                        model = try HeadSetup.freshHead(kind, encoder: encoder, sam: samTensors, seed: seed)
                    case .unet:
                        train = try UNet.samples(patients: trainP, plan: plan, side: config.unetSize, augment: config.augment)
                        val = try UNet.samples(patients: valP, plan: plan, side: config.unetSize, augment: false)
                        model = UNet(classes: 4, channels: config.unetChannels, seed: seed)
                    case .boxPrompt:
                        continue
                    }
                    let tag = "fold \(fold.index), \(v) volume\(v == 1 ? "" : "s"), \(method.name)"
                    let t0 = Date()
                    let reports = Trainer.fit(model, train: train, validation: val, options: options) { r in
                        if r.epoch == 1 || r.epoch % 10 == 0 {
                            self.log(String(format: "  %@: epoch %d  loss %.4f  val Dice %.4f  %.1f s/epoch, this run ~%@ left",
                                            tag, r.epoch, r.loss, r.validationDice, r.seconds,
                                            Self.duration(r.seconds * Double(self.config.epochs - r.epoch))))
                        }
                    }
                    let trainSecs = Date().timeIntervalSince(t0)
                    let best = val.isEmpty ? nil : reports.map(\.validationDice).max()
                    let segment: (TestVolume) throws -> LabelMap
                    if case .head(let kind) = method {
                        let meta = HeadMetadata(
                            kind: kind, classes: CardiacLabel.allCases.map(\.name), inChannels: encoder.config.outChannels,
                            encoder: encoder.identity, encoderSize: encoder.config.name, plan: headPlan, trainingPatients: trainP.map(\.id),
                            validationPatients: valP.map(\.id), validationDice: best ?? .nan, epochs: reports.count, options: options,
                            created: ISO8601DateFormatter().string(from: Date()), software: "autosam \(BuildInfo.version)")
                        let seg = try Segmenter(head: model, metadata: meta, encoder: encoder, cache: cache)
                        segment = { try seg.segment($0.image) }
                    } else {
                        let unet = model as! UNet
                        let side = config.unetSize
                        segment = { try unet.segment($0.image, plan: plan, side: side) }
                    }
                    let (md, evalSecs) = try evaluate(method, fold: fold.index, volumes: v, segment)
                    runs.append(.init(fold: fold.index, method: method.name, volumes: v, trainingSlices: train.count, validationSlices: val.count,
                                      epochs: reports.count, bestValidationDice: best, trainSeconds: trainSecs, evaluateSeconds: evalSecs, meanDice: md))
                    try write(complete: false)
                    progress(String(format: "%@: mean Dice %.3f (%d epochs, trained %@)", tag, md, reports.count, Self.duration(trainSecs)),
                             units: Double(v), seconds: trainSecs + evalSecs)
                }
            }
        }
        try write(complete: true)
        let table = ExperimentTable.rows(results)
        log(ExperimentTable.markdown(table))
        log(String(format: "wrote %@/results.csv, table.md, summary.json in %@ (embedding cache: %d hits, %d computed, %d repaired)",
                   out, Self.duration(Date().timeIntervalSince(started)), cache.hits, cache.misses, cache.repaired))
        return ExperimentSummary(
            config: config, encoder: encoder.identity, plan: plan, split: split, table: table, runs: runs,
            seconds: Date().timeIntervalSince(started), cache: ["hits": cache.hits, "computed": cache.misses, "repaired": cache.repaired],
            software: "autosam \(BuildInfo.version)", created: ISO8601DateFormatter().string(from: Date()), complete: true)
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        if s < 60 { return String(format: "%.0f s", s) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60)
    }
}
