import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import SegmentAnything
@testable import Tensor

@Suite struct ExperimentTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "autosam-exp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    let ids = (1...30).map { String(format: "patient%03d", $0) }

    // MARK: folds

    @Test func splitIsDisjointAndReproducible() throws {
        let a = try ExperimentSplit.make(patients: ids, test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 7)
        #expect(a.test.count == 10 && a.folds.count == 3)
        var seen = Set(a.test)
        for f in a.folds {
            #expect(f.train.count == 5 && f.validation.count == 1)
            // Training and validation of a fold are disjoint from the test set and from every other fold.
            for id in f.train + f.validation { #expect(seen.insert(id).inserted, "\(id) used twice") }
            // The 1-volume set is inside the 5-volume set.
            #expect(f.train(volumes: 1) == [f.train[0]])
        }
        #expect(seen.isSubset(of: Set(ids)))
        // Same seed (and any listing order of the folders): the same split.
        let again = try ExperimentSplit.make(patients: ids.reversed(), test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 7)
        #expect(again == a)
        // Another seed: another split.
        let other = try ExperimentSplit.make(patients: ids, test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 8)
        #expect(other.test != a.test)
        #expect(other.folds.map(\.train) != a.folds.map(\.train))
    }

    /// Stratified: the same test set; each fold's five training patients are five different
    /// groups (30 patients, 5 groups of 6), the split is still disjoint and reproducible.
    @Test func stratifiedSplitCoversTheGroups() throws {
        let groups = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, ["NOR", "DCM", "HCM", "MINF", "RV"][$0 % 5]) })
        let plain = try ExperimentSplit.make(patients: ids, test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 7)
        let s = try ExperimentSplit.make(patients: ids, test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 7, groups: groups)
        #expect(s.test == plain.test)
        var seen = Set(s.test)
        for f in s.folds {
            #expect(Set(f.train.map { groups[$0]! }).count == 5, "\(f.train.map { groups[$0]! })")
            for id in f.train + f.validation { #expect(seen.insert(id).inserted, "\(id) used twice") }
        }
        // The unstratified split of this seed does not cover every group in every fold.
        #expect(plain.folds.contains { Set($0.train.map { groups[$0]! }).count < 5 })
        #expect(try ExperimentSplit.make(patients: ids.reversed(), test: 10, folds: 3, maxVolumes: 5, validation: 1, seed: 7, groups: groups) == s)
    }

    @Test func tooFewPatientsIsASpecificError() {
        #expect(throws: ExperimentError.tooFewPatients(have: 30, need: 32, detail: "20 test + 2 fold(s) x (5 training + 1 validation)")) {
            _ = try ExperimentSplit.make(patients: ids, test: 20, folds: 2, maxVolumes: 5, validation: 1, seed: 0)
        }
        // Exactly enough is fine.
        #expect(throws: Never.self) {
            _ = try ExperimentSplit.make(patients: ids, test: 18, folds: 2, maxVolumes: 5, validation: 1, seed: 0)
        }
    }

    // MARK: table

    /// Hand-made per-volume numbers; the expected table values are worked out by hand below.
    @Test func tableAggregatesFoldMeansThenMeanAndStdOverFolds() {
        let rs = [
            VolumeResult(fold: 0, method: "cnn", volumes: 1, patient: "a", frame: 1, dice: [0.8, 0.6, 0.9], assd: [2, 4, nil]),
            VolumeResult(fold: 0, method: "cnn", volumes: 1, patient: "a", frame: 9, dice: [0.6, 0.4, 0.7], assd: [1, 3, 5]),
            VolumeResult(fold: 1, method: "cnn", volumes: 1, patient: "a", frame: 1, dice: [0.9, 0.7, 1.0], assd: [1, 1, 1]),
            VolumeResult(fold: 1, method: "cnn", volumes: 1, patient: "a", frame: 9, dice: [0.7, 0.5, 0.8], assd: [3, nil, nil]),
            VolumeResult(fold: 0, method: "box", volumes: 0, patient: "a", frame: 1, dice: [0.5, 0.2, 0.0], assd: [7, 9, nil]),
            VolumeResult(fold: 0, method: "linear", volumes: 1, patient: "a", frame: 1, dice: [0, 0, 0], assd: [nil, nil, nil]),
        ]
        let rows = ExperimentTable.rows(rs)
        #expect(rows.map(\.method) == ["box", "linear", "cnn"])  // by training volumes, then the paper's order
        let cnn = rows[2]
        // Fold 0: RV (0.8+0.6)/2 = 0.7, Myo 0.5, LV 0.8; mean Dice (2.3/3 + 1.7/3)/2 = 2/3;
        //         ASSD over the defined values 2,4,1,3,5 = 3.
        // Fold 1: RV 0.8, Myo 0.6, LV 0.9; mean Dice (2.6/3 + 2.0/3)/2 = 23/30; ASSD (1+1+1+3)/4 = 1.5.
        // Over folds: means 0.75, 0.55, 0.85, 43/60, 2.25; sample std: |a-b|/sqrt(2).
        let expectedMean = [0.75, 0.55, 0.85, 43.0 / 60, 2.25]
        let expectedStd = [0.1, 0.1, 0.1, 0.1, 1.5].map { $0 / 2.0.squareRoot() }
        for i in 0..<5 {
            #expect(abs(cnn.mean[i]! - expectedMean[i]) < 1e-12, "mean \(i): \(cnn.mean[i]!)")
            #expect(abs(cnn.std[i]! - expectedStd[i]) < 1e-12, "std \(i): \(cnn.std[i]!)")
        }
        #expect(cnn.assdUndefined == 3 && cnn.folds == 2 && cnn.testVolumes == 2)
        // A single fold has no standard deviation.
        #expect(rows[0].std.allSatisfy { $0 == nil } && abs(rows[0].mean[3]! - 0.7 / 3) < 1e-12 && rows[0].mean[4] == 8)
        let md = ExperimentTable.markdown(rows)
        #expect(md.contains("| 1 volume | Encoder + CNN | 75.00 ± 7.07 | 55.00 ± 7.07 | 85.00 ± 7.07 | 71.67 ± 7.07 | 2.25 ± 1.06 | 3 | 2 x 2 |"), "\(md)")
        #expect(md.contains("| none (GT boxes) | zero-shot SAM, box prompt (GT boxes) | 50.00 | 20.00 | 0.00 | 23.33 | 8.00 | 1 | 1 x 1 |"), "\(md)")
        // No defined distance at all: no ASSD, not a number made up.
        #expect(rows[1].mean[4] == nil && md.contains("| 1 volume | Encoder + Linear | 0.00 | 0.00 | 0.00 | 0.00 | - | 3 | 1 x 1 |"))
        let csv = ExperimentTable.csv(rs).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(csv.count == rs.count + 2)  // header, rows, final newline
        #expect(csv[1] == "0,cnn,1,a,1,0.800000,0.600000,0.900000,0.766667,2.000000,4.000000,,3.000000")
    }

    // MARK: options and bad input

    @Test func optionParsingRefusesUnknownNames() throws {
        #expect(try ExperimentConfig.parseHeads("autosam, cnn") == [.autosam, .cnn])
        #expect(throws: ExperimentError.unknownHead("vit")) { _ = try ExperimentConfig.parseHeads("cnn,vit") }
        #expect(throws: ExperimentError.unknownBaseline("simclr")) { _ = try ExperimentConfig.parseBaselines("unet,simclr") }
        let none = try ExperimentConfig.parseBaselines("none"), both = try ExperimentConfig.parseBaselines("box,unet")
        #expect(!none.unet && !none.box && both.unet && both.box)
        #expect(throws: ExperimentError.self) { _ = try ExperimentConfig.parseVolumes("1,0") }
        #expect(try ExperimentConfig.parseVolumes("5,1,5") == [1, 5])
        #expect(ExperimentError.unknownHead("vit").description.contains("autosam, cnn, linear"))
        var rotations = ExperimentConfig()
        rotations.testRotations = 0
        #expect(throws: ExperimentError.badOption("--test-rotations must be 1...64")) { try rotations.validate() }
        var samples = ExperimentConfig()
        samples.epochSamples = -1
        #expect(throws: ExperimentError.badOption("--epoch-samples must be 0...100000")) { try samples.validate() }
    }

    @Test func missingGroundTruthAndTooFewPatientsFailBeforeAnyWork() throws {
        let data = try tempDir(), out = try tempDir()
        _ = try PhantomGenerator.generate(into: data, patients: 3, seed: 3, cine: false)
        var c = ExperimentConfig()
        c.testPatients = 2
        c.volumes = [5]
        let runner = ExperimentRunner(config: c, data: data, out: out, cache: out + "/cache") { _ in }
        #expect(throws: ExperimentError.tooFewPatients(have: 3, need: 8, detail: "2 test + 1 fold(s) x (5 training + 1 validation)")) {
            try runner.run()
        }
        // Remove one ground truth file: the patient and frame are named.
        let p = try ACDCPatient(folder: data + "/patient002")
        try FileManager.default.removeItem(atPath: p.labelPath(frame: p.info.es))
        let name = ACDCPatient.frameName("patient002", frame: p.info.es) + "_gt.nii.gz"
        #expect(throws: ExperimentError.missingGroundTruth(patient: "patient002", frame: p.info.es, path: name)) { try runner.run() }
        #expect(!FileManager.default.fileExists(atPath: out + "/results.csv"))
    }

    // MARK: baselines

    @Test func boxOfAClassIsItsInclusiveBoundingBox() {
        var px = [UInt8](repeating: 0, count: 6 * 6)
        px[1 * 6 + 2] = 3; px[3 * 6 + 4] = 3; px[2 * 6 + 1] = 1
        #expect(BoxPromptBaseline.box(px, side: 6, label: 3)! == (2, 1, 4, 3))
        #expect(BoxPromptBaseline.box(px, side: 6, label: 1)! == (1, 2, 1, 2))
        #expect(BoxPromptBaseline.box(px, side: 6, label: 2) == nil)
    }

    /// The UNet learns a toy task (label = which quadrant-sized blob is bright) with the shared
    /// trainer, and its logits have the input's size.
    @Test func unetLearnsAToyTask() {
        var r = SplitMix64(seed: 4)
        func sample() -> TrainingSample {
            var img = [Float](repeating: -1, count: 16 * 16), labels = [Int](repeating: 0, count: 16 * 16)
            let cx = 3 + Int(r.next() % 10), cy = 3 + Int(r.next() % 10), cls = 1 + Int(r.next() % 2)
            for y in 0..<16 { for x in 0..<16 where abs(x - cx) <= 2 && abs(y - cy) <= 2 {
                img[y * 16 + x] = cls == 1 ? 1 : 0
                labels[y * 16 + x] = cls
            } }
            return TrainingSample(embedding: Tensor(shape: [1, 16, 16], data: img), labels: labels, source: "toy")
        }
        let train = (0..<24).map { _ in sample() }, val = (0..<8).map { _ in sample() }
        let net = UNet(classes: 3, channels: [8, 16], seed: 1)
        var o = TrainingOptions()
        o.epochs = 40
        o.learningRate = 5e-3
        o.patience = 40
        let before = Trainer.dice(net, val)
        _ = Trainer.fit(net, train: train, validation: val, options: o)
        #expect(Autograd.withoutGrad { net.forward(Variable(val[0].embedding)) }.shape == [3, 16, 16])
        let after = Trainer.dice(net, val)
        #expect(after > 0.8, "UNet validation Dice \(before) -> \(after)")
    }

    /// The UNet trains on the heads' views: the plain field plus the plan's augmented views,
    /// grouped by slice, labels sampled into the same field.
    @Test func unetSamplesUseThePlansFieldAndViews() throws {
        let data = try tempDir()
        _ = try PhantomGenerator.generate(into: data, patients: 1, seed: 9, cine: false)
        let p = try ACDCDataset.patients(in: data)[0]
        let plan = PreprocessingPlan.robust(encoderSize: 256)
        let views = plan.augmentation!.views
        let samples = try UNet.samples(patients: [p], plan: plan, side: 32, augment: true)
        var slices = 0
        for f in Set([p.info.ed, p.info.es]) { slices += try p.labelledFrame(f).image.shape.nz }
        #expect(samples.count == slices * (views + 1))
        #expect(Set(samples.compactMap(\.slice)).count == slices)
        let (image, labels) = try p.labelledFrame(min(p.info.ed, p.info.es))
        let plain = samples[0]
        #expect(plain.embedding.shape == [1, 32, 32])
        #expect(plain.labels == plan.labels(labels.slice(0), side: 32).map(Int.init))
        var p32 = plan
        p32.sliceSize = 32
        #expect(plain.embedding.data == p32.window(try image.slice(0)).map { $0 / 127.5 - 1 })
        // The augmented views differ from the plain one.
        #expect(samples[1].embedding != plain.embedding)
        #expect(try UNet.samples(patients: [p], plan: plan, side: 32, augment: false).count == slices)
    }

    // MARK: end to end

    @Test(.timeLimit(.minutes(10))) func tinyRunWritesAllOutputs() throws {
        let data = try tempDir(), out = try tempDir()
        _ = try PhantomGenerator.generate(into: data, patients: 3, seed: 5, cine: false)
        var c = ExperimentConfig()
        c.encoder = "demo"
        c.volumes = [1]
        c.testPatients = 1
        c.validationPatients = 1
        c.epochs = 1
        c.augment = false  // (augmented views: PreprocessingTests; here, the run's outputs)
        c.testRotations = 2  // test slices are also segmented turned by 180 degrees
        c.unetSize = 32
        c.unetChannels = [4, 8]
        var lines: [String] = []
        let summary = try ExperimentRunner(config: c, data: data, out: out, cache: out + "/cache") { lines.append($0) }.run()

        // Slices of the three patients' ED + ES frames: every one encoded exactly once, shared
        // by the three heads and the box baseline; the test patient's slices once more, turned
        // (the second test-time view).
        let split = summary.split
        var slices = 0, testSlices = 0
        for p in try ACDCDataset.patients(in: data) {
            for f in Set([p.info.ed, p.info.es]) {
                let n = try p.labelledFrame(f).image.shape.nz
                slices += n
                if split.test.contains(p.id) { testSlices += n }
            }
        }
        #expect(testSlices > 0)
        let cached = try FileManager.default.contentsOfDirectory(atPath: out + "/cache").filter { $0.hasSuffix(".emb") }
        #expect(cached.count == slices + testSlices)
        #expect(summary.cache["computed"] == slices + testSlices)
        #expect(Set(split.test).isDisjoint(with: split.folds[0].train + split.folds[0].validation))
        // results.csv: header + (4 trained methods + box) x 2 test volumes (ED, ES).
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.first == Substring(ExperimentTable.csvHeader))
        #expect(csv.count == 1 + 5 * 2)
        let rows = csv.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(Set(rows.map { String($0[1]) }) == ["autosam", "cnn", "linear", "unet", "box"])
        #expect(rows.allSatisfy { String($0[3]) == split.test[0] })
        for r in rows {
            for d in r[5...8] {
                let v = Double(d)!
                #expect(v >= 0 && v <= 1)
            }
        }
        let md = try String(contentsOfFile: out + "/table.md", encoding: .utf8)
        for label in ["| 1 volume | AutoSAM |", "| 1 volume | Encoder + CNN |", "| 1 volume | Encoder + Linear |",
                      "| 1 volume | UNet (from scratch) |", "| none (GT boxes) | zero-shot SAM, box prompt"] {
            #expect(md.contains(label), "\(label) missing in\n\(md)")
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = try decoder.decode(ExperimentSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        #expect(json.complete && json.table.count == 5 && json.runs.count == 5)
        #expect(json.table.first { $0.method == "cnn" }!.testVolumes == 2)
        // Progress reports each finished run with the time left.
        #expect(lines.filter { $0.hasPrefix("[") && $0.contains("left") }.count == 5)
    }
}
