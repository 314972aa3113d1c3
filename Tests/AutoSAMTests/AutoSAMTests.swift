import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import Tensor
import SegmentAnything

@Suite struct AutoSAMTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "autosam-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// An encoder argument: a registered name is a name, a folder is refused as one, a file
    /// is a checkpoint. (A folder named "demo" in the working directory used to be opened as
    /// the checkpoint and failed with a bare "Is a directory".)
    @Test func encoderArgumentsResolveToNamesOrCheckpointFiles() throws {
        #expect(try FrozenEncoder.resolve("demo") == .random(SAMConfig.named("demo")!))
        let dir = try tempDir()
        let folder = dir + "/demo"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        #expect(throws: CheckpointError.self) { try FrozenEncoder.resolve(folder) }
        do { _ = try FrozenEncoder.resolve(folder); Issue.record("a folder was accepted") } catch {
            #expect("\(error)".contains("a folder, not a checkpoint file"))
        }
        do { _ = try FrozenEncoder.resolve(dir + "/missing.pth"); Issue.record("a missing file was accepted") } catch {
            #expect("\(error)".contains("no such file") && "\(error)".contains("vit_b"))
        }
        let file = dir + "/model.pth"
        try Data([0]).write(to: URL(fileURLWithPath: file))
        #expect(try FrozenEncoder.resolve(file) == .checkpoint(path: file, official: false))
    }

    @Test func cacheRoundTripAndCorruptEntryIsRecomputed() throws {
        let dir = try tempDir()
        let cache = try EmbeddingCache(folder: dir)
        let t = Tensor(shape: [2, 3], data: [1, -2, 0.5, 3.25, 0, 7])
        var calls = 0
        _ = cache.embedding(key: "k") { calls += 1; return t }
        let again = cache.embedding(key: "k") { calls += 1; return t }
        #expect(calls == 1 && again == t && cache.hits == 1)
        // Damage the stored payload: the entry must be detected, dropped and recomputed.
        let path = dir + "/k.emb"
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[data.count - 1] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: path))
        let repaired = cache.embedding(key: "k") { calls += 1; return t }
        #expect(calls == 2 && repaired == t && cache.repaired == 1)
    }

    /// A first (computing) call returns exactly what later cache hits return (the stored
    /// float16 values), so a rerun gives the same model as the first run.
    @Test func aCacheMissReturnsWhatAHitWill() throws {
        let cache = try EmbeddingCache(folder: try tempDir())
        let t = Tensor(shape: [3], data: [0.1, 1.0 / 3, 1234.567])
        let first = cache.embedding(key: "x") { t }
        let second = cache.embedding(key: "x") { t }
        #expect(first == second && cache.hits == 1)
        #expect(first != t)  // the values really were rounded
    }

    /// A tiny problem a head can learn: each embedding position carries its class as a
    /// raised channel (0-3) among noisy ones; labels repeat it over the 4x4 pixels it covers.
    func toySamples(_ n: Int, seed: UInt64) -> [TrainingSample] {
        var r = Initializer(state: seed)
        return (0..<n).map { _ in
            var emb = Tensor(shape: [16, 2, 2], data: (0..<64).map { _ in 0.2 * r.uniform() })
            let classes = (0..<4).map { _ in Int((r.uniform() + 1) * 2) % 4 }
            for p in 0..<4 { emb.data[classes[p] * 4 + p] += 1 }
            var labels = [Int](repeating: 0, count: 64)
            for y in 0..<8 { for x in 0..<8 { labels[y * 8 + x] = classes[(y / 4) * 2 + x / 4] } }
            return TrainingSample(embedding: emb, labels: labels, source: "toy")
        }
    }

    @Test func trainingReducesTheLossAndIsReproducible() throws {
        let train = toySamples(24, seed: 1), val = toySamples(8, seed: 2)
        var options = TrainingOptions()
        options.epochs = 60
        options.learningRate = 1e-2
        options.patience = 60
        let head = LinearHead(inChannels: 16, classes: 4, seed: 5)
        let reports = Trainer.fit(head, train: train, validation: val, options: options)
        #expect(reports.last!.loss < 0.75 * reports.first!.loss, "\(reports.first!.loss) -> \(reports.last!.loss)")
        // It learned the rule: validation Dice well above chance (~0.25).
        #expect(Trainer.dice(head, val) > 0.6, "\(Trainer.dice(head, val))")
        let head2 = LinearHead(inChannels: 16, classes: 4, seed: 5)
        let reports2 = Trainer.fit(head2, train: train, validation: val, options: options)
        #expect(reports.map(\.loss) == reports2.map(\.loss))
    }

    @Test func savedHeadReloadsToIdenticalPredictions() throws {
        let dir = try tempDir()
        let head = CNNHead(inChannels: 16, classes: 4, seed: 3)
        let meta = HeadMetadata(
            kind: .cnn, classes: ["background", "RV", "Myo", "LV"], inChannels: 16, encoder: "random tiny seed 1", encoderSize: "tiny",
            plan: .paper(encoderSize: 224), trainingPatients: ["p1"], validationPatients: [], validationDice: 0.5, epochs: 1,
            options: TrainingOptions(), created: "now", software: "test")
        try HeadModel.save(head, metadata: meta, to: dir)
        let (loaded, meta2) = try HeadModel.load(dir)
        let e = toySamples(1, seed: 9)[0].embedding
        #expect(Trainer.predict(head, e) == Trainer.predict(loaded, e))
        #expect(meta2.encoder == meta.encoder && meta2.plan == meta.plan)
        // A model for another encoder is refused.
        #expect(throws: CheckpointError.self) {
            _ = try Segmenter(head: loaded, metadata: meta2, encoder: try FrozenEncoder(source: "demo"))
        }
        // Embedding statistics are saved with the plan; a count that does not match the head's
        // input channels is refused at load with a message that says so, not a crash later.
        var withStats = meta
        withStats.plan.embeddingStatistics = ChannelStatistics(mean: [Float](repeating: 0.5, count: 16), std: [Float](repeating: 2, count: 16))
        try HeadModel.save(head, metadata: withStats, to: dir)
        #expect(try HeadModel.load(dir).1.plan == withStats.plan)
        withStats.plan.embeddingStatistics = ChannelStatistics(mean: [0.5, 0.5], std: [2, 2])
        try HeadModel.save(head, metadata: withStats, to: dir)
        do {
            _ = try HeadModel.load(dir)
            Issue.record("statistics for 2 channels were accepted by a 16-channel head")
        } catch {
            #expect("\(error)".contains("statistics for 2 channels"), "\(error)")
        }
    }

    @Test func segmentationKeepsTheInputGrid() throws {
        let enc = try FrozenEncoder(source: "tiny")
        let head = LinearHead(inChannels: enc.config.outChannels, classes: 4, seed: 1)
        let meta = HeadMetadata(
            kind: .linear, classes: ["background", "RV", "Myo", "LV"], inChannels: enc.config.outChannels, encoder: enc.identity,
            encoderSize: "tiny", plan: .robust(encoderSize: 224), trainingPatients: [], validationPatients: [], validationDice: 0,
            epochs: 0, options: TrainingOptions(), created: "now", software: "test")
        let seg = try Segmenter(head: head, metadata: meta, encoder: enc)
        // Non-square in-plane size and an odd slice count, on an oblique grid.
        let dir: [SIMD3<Double>] = [SIMD3(0.8, 0.6, 0), SIMD3(-0.6, 0.8, 0), SIMD3(0, 0, 1)]
        let g = VolumeGeometry(spacing: SIMD3(1.4, 1.4, 8), origin: SIMD3(5, -7, 12), direction: dir)
        let shape = GridShape(37, 29, 3)
        let image = Volume(shape: shape, geometry: g, floats: (0..<shape.count).map { Float($0 % 97) })
        let labels = try seg.segment(image)
        #expect(labels.shape == shape)
        #expect(labels.geometry == image.geometry)
        #expect(labels.labels.allSatisfy { $0 <= 3 })
    }
}
