import ArgumentParser
import AutoSAM
import CardiacImaging
import Foundation
import NN
import SegmentAnything
import Tensor

extension HeadKind: ExpressibleByArgument {}

struct FitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit", abstract: "Train a prompt-free head on a frozen SAM encoder from labelled ACDC-layout volumes.")

    @Option(help: "ACDC-layout dataset folder.") var data: String
    @Option(help: "Training patients, comma-separated (e.g. patient001,patient002).") var train: String
    @Option(help: "Validation patients, comma-separated (early stopping).") var validation: String?
    @Option(help: "Head: autosam, cnn, linear or context (ours: the CNN head with a context path over the embedding grid).") var head: HeadKind = .cnn
    @Option(help: "Encoder: litemedsam (the fetched LiteMedSAM checkpoint, the default), a SAM checkpoint path, or a size name for seeded random weights (demo).") var encoder = "litemedsam"
    @Option(help: "Output model folder.") var out: String
    @Option(help: "Embedding cache folder.") var cache = ".autosam-cache"
    @Option(help: "Epochs.") var epochs = 120
    @Option(help: "Early-stopping patience in epochs (without a better validation Dice).") var patience = 30
    @Option(help: "Fewest samples per epoch: every slice's views are drawn again until an epoch holds this many (0: one view per slice, the paper's epoch).") var epochSamples = TrainingOptions.fewShotEpochSamples
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Start from this model folder's head (same kind, encoder and plan) instead of a fresh one.") var initModel: String?
    @Option(help: "Keep the training state in this folder after every epoch, and go on from it when it holds the state of the same run (a stopped run ends with the same model as one that never stopped).") var state: String?
    @Flag(help: "Train on the plain slices only (no augmented views: fewer encoder runs).") var noAugment = false
    @Option(help: "Augmented views per training slice (default 16; each is one encoder run per slice).") var views: Int?
    @Option(help: "Elastic deformation of the training views: standard deviation of the smooth displacement in mm (default 0: off).") var elastic: Double?
    @Flag(help: "Random contrast per tissue in the training views (blood pools and myocardium moved to random mean intensities).") var tissueContrast = false
    @Option(help: "Smooth random shading of the training views, largest log amplitude (0-2; default 0: off).") var shading: Double?
    @Flag(help: "Find the heart on a coarse field first and centre the field on it (trained with coarse views; the coarse pass costs a few encoder runs per volume).") var localize = false
    @Option(help: "Inference views per slice saved in the model's plan: the plain field and its rotations by multiples of 360/N degrees, probabilities averaged (default 1; each is one encoder run per slice).") var testRotations: Int?

    func run() throws {
        // Checked before any work: the model is saved only after training.
        if FileManager.default.fileExists(atPath: out) {
            throw ValidationError("\(out) already exists: give a new output folder (a model is never overwritten)")
        }
        guard patience > 0, epochs > 0 else { throw ValidationError("--epochs and --patience must be positive") }
        let samples = TrainingOptions.minimumEpochSamplesRange, rotations = PreprocessingPlan.testTimeRotationsRange
        guard samples.contains(epochSamples) else { throw ValidationError("--epoch-samples must be \(samples)") }
        if let views, !Augmentation.viewsRange.contains(views) { throw ValidationError("--views must be \(Augmentation.viewsRange)") }
        if let elastic, !Augmentation.elasticRange.contains(elastic) { throw ValidationError("--elastic must be \(Augmentation.elasticRange) mm") }
        if let testRotations, !rotations.contains(testRotations) { throw ValidationError("--test-rotations must be \(rotations)") }
        let all = try ACDCDataset.patients(in: data)
        func pick(_ list: String?) throws -> [ACDCPatient] {
            guard let list else { return [] }
            return try list.split(separator: ",").map { id in
                guard let p = all.first(where: { $0.id == id }) else { throw ValidationError("no patient \(id) in \(data)") }
                return p
            }
        }
        let trainP = try pick(train), valP = try pick(validation)
        guard !trainP.isEmpty else { throw ValidationError("no training patients") }
        for p in trainP + valP where !(p.hasLabels(frame: p.info.ed) && p.hasLabels(frame: p.info.es)) {
            throw ValidationError("\(p.id) has no ED/ES ground truth (_gt) to train on")
        }
        let enc = try FrozenEncoder(source: encoder)
        try HeadSetup.checkGrid(head, config: enc.config)  // before any encoding
        var plan = HeadSetup.plan(for: enc, head: head, views: views, elasticMM: elastic)
        if tissueContrast { plan.augmentation?.tissueContrast = true }
        if localize { plan.localization = Localization() }
        if let shading {
            guard (0...2).contains(shading) else { throw ValidationError("--shading must be 0...2") }
            plan.augmentation?.shading = shading
        }
        var initial: SegmentationHead?
        if let initModel {
            let (h, meta) = try HeadModel.load(initModel)
            guard meta.kind == head else { throw ValidationError("\(initModel) holds a \(meta.kind.rawValue) head, not \(head.rawValue)") }
            guard meta.encoder == enc.identity else { throw ValidationError("\(initModel) was trained on encoder \(meta.encoder), not \(enc.identity)") }
            plan = meta.plan
            initial = h
        }
        if let testRotations { plan.testTimeRotations = testRotations }
        let cacheStore = try EmbeddingCache(folder: cache)
        let start = Date()
        var trainS = try SliceData.samples(patients: trainP, plan: plan, encoder: enc, cache: cacheStore, augment: !noAugment) { print($0); fflush(nil) }
        var valS = try SliceData.samples(patients: valP, plan: plan, encoder: enc, cache: cacheStore) { print($0); fflush(nil) }
        // A fresh head completes the plan's statistics; a continued head keeps its plan as it is
        // (with statistics, the samples already have them; without, it was trained on raw ones).
        if initial == nil { SliceData.standardizeForTraining(train: &trainS, validation: &valS, plan: &plan) }
        print(String(format: "encoded %d + %d slices in %.1f s (cache: %d hits, %d computed, %d repaired)",
                     trainS.count, valS.count, Date().timeIntervalSince(start), cacheStore.hits, cacheStore.misses, cacheStore.repaired))
        let model = try initial ?? HeadSetup.freshHead(head, encoder: enc, seed: seed)
        var options = TrainingOptions()
        options.epochs = epochs
        options.patience = patience
        options.minimumEpochSamples = epochSamples
        options.seed = seed
        let progress: (EpochReport) -> Void = { [valS, epochs] r in
            let left = r.seconds * Double(epochs - r.epoch)
            // Without validation patients the trainer ranks epochs by training loss instead.
            let val = valS.isEmpty ? "no validation" : String(format: "val Dice %.4f", r.validationDice)
            print(String(format: "epoch %3d  loss %.4f  %@  lr %.2g  %.1f s/epoch, ~%.0f s left", r.epoch, r.loss, val, r.learningRate, r.seconds, left))
            fflush(nil)  // progress reaches logs as it happens
        }
        let reports: [EpochReport]
        if let state {
            let resume = TrainingResume(folder: state)
            if let epoch = resume.savedEpoch { print("going on from epoch \(epoch) saved in \(state)") }
            reports = try Trainer.fit(model, train: trainS, validation: valS, options: options, resume: resume, progress: progress)
        } else {
            reports = Trainer.fit(model, train: trainS, validation: valS, options: options, progress: progress)
        }
        let best = reports.map(\.validationDice).max() ?? .nan
        let meta = HeadMetadata(
            kind: head, classes: CardiacLabel.allCases.map(\.name), inChannels: enc.config.outChannels, encoder: enc.identity,
            encoderSize: enc.config.name, plan: plan, trainingPatients: trainP.map(\.id), validationPatients: valP.map(\.id),
            validationDice: best, epochs: reports.count, options: options,
            created: ISO8601DateFormatter().string(from: Date()), software: "autosam \(BuildInfo.version)",
            decoderHeads: head == .autosam ? enc.config.decoderHeads : nil, decoderDepth: head == .autosam ? enc.config.decoderDepth : nil)
        try HeadModel.save(model, metadata: meta, to: out)
        print(valS.isEmpty ? "saved \(out) (no validation patients: the epoch with the lowest training loss)"
                           : String(format: "saved %@ (best validation Dice %.4f)", out, best))
    }
}

/// A model folder (or the embedded default) with its encoder: the given checkpoint, or for a
/// head trained on seeded random weights, that size again.
func loadSegmenter(model: String?, encoder: String?, testRotations: Int? = nil) throws -> Segmenter {
    let (head, meta) = try HeadModel.load(try model ?? DefaultModel.directory())
    guard let source = encoder ?? meta.encoderSource else {
        throw ValidationError("the model was trained on encoder \(meta.encoder): give its checkpoint with --encoder PATH")
    }
    if let testRotations, !PreprocessingPlan.testTimeRotationsRange.contains(testRotations) {
        throw ValidationError("--test-rotations must be \(PreprocessingPlan.testTimeRotationsRange), not \(testRotations)")
    }
    var seg = try Segmenter(head: head, metadata: meta, encoder: try FrozenEncoder(source: source))
    seg.testTimeRotations = testRotations
    return seg
}

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment", abstract: "Segment a 3D NIfTI volume (or an ACDC patient's ED/ES frames) with a trained head.")

    @Option(help: "Model folder made by autosam fit (default: the embedded default head).") var model: String?
    @Option(help: "Encoder checkpoint the model was trained on (not needed for a random-weight size such as demo).") var encoder: String?
    @Argument(help: "Input: a 3D .nii/.nii.gz, or an ACDC patient folder.") var input: String
    @Option(help: "Inference views per slice: the plain field and its rotations by multiples of 360/N degrees, probabilities averaged (default: the model's plan).") var testRotations: Int?
    @Option(help: "Output label map (.nii.gz), or an output folder for a patient.") var out: String

    func run() throws {
        let seg = try loadSegmenter(model: model, encoder: encoder, testRotations: testRotations)
        if FileManager.default.fileExists(atPath: input + "/Info.cfg") {
            let p = try ACDCPatient(folder: input)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for f in Set([p.info.ed, p.info.es]).sorted() {
                let labels = try seg.segment(try NIfTI.read3D(p.imagePath(frame: f)))
                let path = "\(out)/\(ACDCPatient.frameName(p.id, frame: f))_pred.nii.gz"
                try NIfTI.write(labels, to: path)
                print("wrote \(path)")
            }
        } else {
            let labels = try seg.segment(try NIfTI.read3D(input))
            try NIfTI.write(labels, to: out)
            print("wrote \(out)")
        }
    }
}

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate", abstract: "Dice, ASSD and HD95 per class and volume of a trained head on labelled patients.")

    @Option(help: "Model folder (default: the embedded default head).") var model: String?
    @Option(help: "Encoder checkpoint the model was trained on (not needed for a random-weight size such as demo).") var encoder: String?
    @Option(help: "ACDC-layout dataset folder.") var data: String
    @Option(help: "Patients, comma-separated (default: all not used in training).") var patients: String?
    @Option(help: "Write per-volume results as JSON here.") var json: String?
    @Option(help: "Refine the head's labels with this pretrained SAM checkpoint's decoder, prompted by boxes of the head's labels (litemedsam or a path).") var refine: String?
    @Option(help: "Field of view (mm) of the refining pass.") var refineFov = 224.0
    @Option(help: "Pixels each refining box grows by.") var refineMargin = 3
    @Flag(help: "Prompt the refining decoder with boxes of the ground truth instead of the head's labels: an upper bound, not a method.") var oracleBoxes = false
    @Option(help: "Inference views per slice: the plain field and its rotations by multiples of 360/N degrees, probabilities averaged (default: the model's plan).") var testRotations: Int?

    func run() throws {
        var seg = try loadSegmenter(model: model, encoder: encoder, testRotations: testRotations)
        let refiner = try refine.map { try BoxRefiner(encoder: try FrozenEncoder(source: $0), fieldOfViewMM: refineFov, marginPixels: refineMargin) }
        if oracleBoxes && refiner == nil { throw ValidationError("--oracle-boxes needs --refine") }
        if !oracleBoxes { seg.refiner = refiner }
        let meta = seg.metadata
        var list = try ACDCDataset.patients(in: data)
        if let patients { let ids = Set(patients.split(separator: ",").map(String.init)); list = list.filter { ids.contains($0.id) } }
        else { list = list.filter { !meta.trainingPatients.contains($0.id) && !meta.validationPatients.contains($0.id) } }
        func cell(_ v: Double?, _ f: String) -> String { v.map { String(format: f, $0) } ?? "     -" }
        print("volume               |  Dice RV   Myo    LV   mean | ASSD mm RV   Myo    LV | HD95 mm RV   Myo    LV | uncertainty")
        var volumes: [[String: Any]] = [], all: [VolumeMetrics] = [], scores: [Double] = []
        for p in list {
            for f in Set([p.info.ed, p.info.es]).sorted() where p.hasLabels(frame: f) {
                let (image, gt) = try p.labelledFrame(f)
                var result = try seg.segmentLocated(image)
                if oracleBoxes, let refiner { result.labels = try refiner.refine(image, labels: gt) }
                let m = try SegmentationMetrics.evaluate(prediction: result.labels, reference: gt)
                all.append(m)
                scores.append(result.uncertainty.score)
                let cls = [UInt8(1), 2, 3].map { m[$0] }
                print("\(p.id) frame \(String(format: "%02d", f)) | " + cls.map { cell($0?.dice, "%5.3f") }.joined(separator: " ")
                      + " " + cell(m.meanDice, "%5.3f") + " | " + cls.map { cell($0?.assd, "%6.2f") }.joined(separator: " ")
                      + " | " + cls.map { cell($0?.hd95, "%6.2f") }.joined(separator: " ") + String(format: " | %.4f", result.uncertainty.score))
                volumes.append(["patient": p.id, "frame": f, "metrics": try JSONSerialization.jsonObject(with: try m.jsonData()),
                                "uncertainty": result.uncertainty.score,
                                "slice_uncertainty": result.uncertainty.slices.map { ["entropy": $0.entropy, "heart_pixels": $0.heartPixels] }])
            }
        }
        guard !all.isEmpty else { throw ValidationError("no labelled ED/ES frames to evaluate among the chosen patients") }
        func mean(_ xs: [Double?]) -> Double? {
            let v = xs.compactMap { $0 }.filter(\.isFinite)
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        func nullable(_ v: Double?) -> Any { v.map { $0 as Any } ?? NSNull() }
        var summary: [String: Any] = ["volumes": all.count, "mean_dice": nullable(mean(all.map(\.meanDice))),
                                      "mean_assd": nullable(mean(all.map(\.meanASSD))), "mean_hd95": nullable(mean(all.map(\.meanHD95)))]
        for (label, name) in [(UInt8(1), "RV"), (2, "Myo"), (3, "LV")] {
            summary[name] = ["dice": nullable(mean(all.map { $0[label]?.dice })), "assd": nullable(mean(all.map { $0[label]?.assd })),
                             "hd95": nullable(mean(all.map { $0[label]?.hd95 }))]
        }
        let classMeans = [UInt8(1), 2, 3].map { l in mean(all.map { $0[l]?.dice }) }
        print("mean over \(all.count) volumes | " + classMeans.map { cell($0, "%5.3f") }.joined(separator: " ")
              + " " + cell(mean(all.map(\.meanDice)), "%5.3f") + String(format: " | mean ASSD %@ mm, mean HD95 %@ mm",
              cell(mean(all.map(\.meanASSD)), "%.2f"), cell(mean(all.map(\.meanHD95)), "%.2f")))
        // Does the uncertainty rank the volumes by their error? (volumes without a mean Dice left out)
        let ranked = zip(all.map(\.meanDice), scores).filter { $0.0.isFinite }
        let rho = spearman(ranked.map(\.1), ranked.map(\.0))
        summary["uncertainty_dice_spearman"] = nullable(rho)
        print("uncertainty vs mean Dice: Spearman " + cell(rho, "%.3f") + " over \(ranked.count) volumes (negative: the more unsure, the worse)")
        if let json {
            try AtomicFile.write(try JSONSerialization.data(withJSONObject: ["volumes": volumes, "summary": summary], options: [.prettyPrinted, .sortedKeys]), to: json)
        }
    }
}

struct HeadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "head", abstract: "Seconds per training step of the AutoSAM head (batch of random embeddings, forward + backward + Adam).")

    @Option(help: "SAM checkpoint whose mask decoder starts the head.") var checkpoint: String
    @Option(help: "Batch size.") var batch = 4
    @Option(help: "Steps after one warm-up step.") var steps = 3

    func run() throws {
        let t = try SAMCheckpoint.tensors(checkpoint)
        let c = try SAMCheckpoint.inferConfig(t)
        let head = try AutoSAMHead(sam: t, config: c, classes: 4, seed: 0)
        var r = SeededRandom(seed: 5)
        let g = c.gridSize
        let samples = (0..<batch).map { _ in
            TrainingSample(embedding: randomEmbedding(c, &r), labels: (0..<(16 * g * g)).map { $0 % 4 }, source: "random")
        }
        var options = TrainingOptions()
        options.epochs = 1
        options.batchSize = batch
        var times: [Double] = []
        for i in 0...steps {
            let start = Date()
            _ = Trainer.fit(head, train: samples, validation: [], options: options)
            let s = Date().timeIntervalSince(start)
            if i > 0 { times.append(s) }
        }
        times.sort()
        print(String(format: "AutoSAM head %@ (%dx%dx%d embeddings, 4 classes), batch %d: median %.3f s per step, min %.3f s",
                     c.name, c.outChannels, g, g, batch, times[times.count / 2], times[0]))
    }
}

struct FitBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Wall time of a whole head fit on cached-size embeddings (the issue's one-volume fit: ED + ES of one patient, 120 epochs).",
        discussion: "Embeddings are random (timing does not depend on their values); labels are a disc of each class per slice. With AUTOSAM_PROFILE=1 it also reports the matrix products: GFLOP a step, their rate, and their share of the fit's CPU time.")

    @Option(help: "SAM checkpoint (for the AutoSAM head's mask decoder and the embedding size), or a size name for random weights.") var encoder = "vit_b"
    @Option(help: "Head: autosam, cnn, linear or context (ours: the CNN head with a context path over the embedding grid).") var head: HeadKind = .autosam
    @Option(help: "Training slices (one ACDC volume's ED + ES: about 20).") var slices = 20
    @Option(help: "Validation slices, Dice computed every epoch (0: none).") var validationSlices = 20
    @Option(help: "Epochs (early stopping off).") var epochs = 120

    func run() throws {
        let c: SAMConfig, sam: [String: Tensor]
        switch try FrozenEncoder.resolve(encoder) {
        case let .checkpoint(path, _):
            sam = try SAMCheckpoint.tensors(path)
            c = try SAMCheckpoint.inferConfig(sam)
        case let .random(named):
            c = named
            sam = head == .autosam ? RandomWeights.promptEncoderAndMaskDecoder(c, seed: 1) : [:]
        }
        do { try HeadSetup.checkGrid(head, config: c) } catch { throw ValidationError("\(error)") }
        let model: SegmentationHead = head == .autosam
            ? try AutoSAMHead(sam: sam, config: c, classes: 4, seed: 0)
            : try Heads.make(head, inChannels: c.outChannels, classes: 4, seed: 0)
        var r = SeededRandom(seed: 5)
        let g = c.gridSize, side = 4 * g
        func sample(_ i: Int) -> TrainingSample {
            let emb = randomEmbedding(c, &r)
            var labels = [Int](repeating: 0, count: side * side)
            for y in 0..<side {
                for x in 0..<side {
                    let d = ((Double(x - side / 2) * Double(x - side / 2) + Double(y - side / 2) * Double(y - side / 2))).squareRoot()
                    labels[y * side + x] = d < Double(side) / 10 ? 3 : d < Double(side) / 7 ? 2 : d < Double(side) / 5 ? 1 : 0
                }
            }
            return TrainingSample(embedding: emb, labels: labels, source: "synthetic \(i)")
        }
        let train = (0..<slices).map(sample), val = (0..<validationSlices).map { sample(slices + $0) }
        var options = TrainingOptions()
        options.epochs = epochs
        options.patience = epochs
        options.minimumEpochSamples = 0  // the paper's epoch: what the issue's timing names
        _ = Profiler.takeGEMMCounts()
        _ = Profiler.takeGEMMShapes(top: 0)
        let start = Date(), cpuStart = processCPUSeconds()
        let reports = Trainer.fit(model, train: train, validation: val, options: options) { rep in
            if rep.epoch == 1 || rep.epoch % 10 == 0 {
                print(String(format: "epoch %3d  %.2f s/epoch  %.0f s so far", rep.epoch, rep.seconds, Date().timeIntervalSince(start)))
                fflush(nil)
            }
        }
        let total = Date().timeIntervalSince(start)
        let steps = reports.count * ((slices + options.batchSize - 1) / options.batchSize)
        print(String(format: "%@ head, %@ (%dx%dx%d embeddings), %d training + %d validation slices, %d epochs (%d steps): %.1f s (%.2f min), %.3f s per step incl. validation",
                     head.rawValue, c.name, c.outChannels, g, g, slices, validationSlices, reports.count, steps, total, total / 60, total / Double(steps)))
        if Profiler.enabled {
            // Where the floor is: the products' share of the fit's CPU time and their rate.
            let gemm = Profiler.takeGEMMCounts(), cpu = processCPUSeconds() - cpuStart
            print(String(format: "matrix products: %.1f GFLOP a step (%d calls in all), %.1f CPU-s inside them (%.0f GFLOPS a core), %.0f%% of the fit's %.1f CPU-s",
                         2 * gemm.multiplyAdds / 1e9 / Double(steps), gemm.calls, gemm.threadSeconds,
                         2 * gemm.multiplyAdds / 1e9 / max(gemm.threadSeconds, 1e-9), 100 * gemm.threadSeconds / max(cpu, 1e-9), cpu))
            for line in Profiler.takeGEMMShapes(top: 15) { print("  " + line) }
        }
    }
}

/// User + system CPU seconds of this process so far (all threads).
private func processCPUSeconds() -> Double {
    var u = rusage()
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
}

/// A standard-normal embedding of the size's shape [outChannels, grid, grid], for benchmarks
/// whose timing does not depend on the values.
private func randomEmbedding(_ c: SAMConfig, _ r: inout SeededRandom) -> Tensor {
    let g = c.gridSize
    return Tensor(shape: [c.outChannels, g, g], data: (0..<(c.outChannels * g * g)).map { _ in Float(r.gaussian()) })
}
