import CardiacImaging
import Foundation
import SegmentAnything
import Testing

@testable import AutoSAM
@testable import NN
@testable import Tensor

/// Small labelled frames cut from phantom patients: `slices` slices around the middle of the
/// stack (world placement kept), so refits on the demo encoder stay quick.
enum PhantomCases {
    static func frames(patient n: Int, seed: UInt64 = 11, slices: Int = 4, dir: String) throws -> [(image: Volume, labels: LabelMap)] {
        _ = try PhantomGenerator.writePatient(number: n, seed: seed, outDir: dir, cine: false)
        let p = try ACDCPatient(folder: dir + String(format: "/patient%03d", n))
        return try [p.info.ed, p.info.es].map { f in
            let (image, labels) = try p.labelledFrame(f)
            return cut(image, labels, slices: slices)
        }
    }

    static func cut(_ image: Volume, _ labels: LabelMap, slices: Int) -> (image: Volume, labels: LabelMap) {
        let nz = image.shape.nz, k0 = max(0, (nz - slices) / 2), n = min(slices, nz)
        let plane = image.shape.nx * image.shape.ny
        var affine = image.geometry.affine
        let origin = image.geometry.world(SIMD3(0, 0, Double(k0)))
        affine[0, 3] = origin.x
        affine[1, 3] = origin.y
        affine[2, 3] = origin.z
        let g = VolumeGeometry(affine: affine), shape = GridShape(image.shape.nx, image.shape.ny, n)
        let img = Volume(shape: shape, geometry: g, floats: image.floats(range: (k0 * plane)..<((k0 + n) * plane)))
        let lab = LabelMap(shape: shape, geometry: g, labels: Array(labels.labels[(k0 * plane)..<((k0 + n) * plane)]))
        return (img, lab)
    }
}

@Suite(.serialized) struct RefitTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "refit-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static let encoder = Result { try FrozenEncoder(source: "demo") }

    /// An untrained linear head for the demo encoder: the stand-in for the embedded default.
    func defaultHead(_ enc: FrozenEncoder) -> VersionedHead {
        let meta = HeadMetadata(
            kind: .linear, classes: CardiacLabel.allCases.map(\.name), inChannels: enc.config.outChannels, encoder: enc.identity,
            encoderSize: enc.config.name, plan: .robust(encoderSize: enc.config.imageSize), trainingPatients: [], validationPatients: [],
            validationDice: 0, epochs: 0, options: TrainingOptions(), created: "2026-12-01T00:00:00Z", software: "test")
        return VersionedHead(version: nil, head: LinearHead(inChannels: enc.config.outChannels, classes: 4, seed: 1), metadata: meta)
    }

    func options(epochs: Int) -> RefitOptions {
        var o = RefitOptions()
        o.training.epochs = epochs
        o.training.learningRate = 5e-3
        o.training.patience = epochs
        o.training.batchSize = 4
        o.training.minimumEpochSamples = 0  // one view per slice: these tests check the loop, not the schedule
        o.augment = false
        return o
    }

    @Test func refitPromotesABetterCandidateRejectsABadOneAndKeepsThePool() throws {
        let enc = try Self.encoder.get()
        let dir = try tempDir()
        let store = try TrainingStore(root: dir + "/training", validationPoolSize: 1)
        let models = try ModelStore(root: dir + "/models")
        let cache = try EmbeddingCache(folder: dir + "/cache")
        let p1 = try PhantomCases.frames(patient: 1, dir: dir + "/ph"), p2 = try PhantomCases.frames(patient: 2, dir: dir + "/ph")
        let p3 = try PhantomCases.frames(patient: 3, dir: dir + "/ph")
        let base = defaultHead(enc)

        // One labelled case: it becomes the validation pool; nothing to train on yet.
        try store.add(ed: p1[0], es: p1[1], source: "phantom 1")
        let first = try Refit.run(training: store, models: models, current: base, encoder: enc, cache: cache, options: options(epochs: 1))
        #expect(first.result == .skipped)
        #expect(try store.frozenPool() == nil && models.versions().isEmpty)

        // One new labelled volume: a refit trains on it and records a version.
        try store.add(ed: p2[0], es: p2[1], source: "phantom 2")
        var seen: [String] = []
        let second = try Refit.run(training: store, models: models, current: base, encoder: enc, cache: cache, options: options(epochs: 12)) {
            seen.append($0.description)
            return .proceed
        }
        #expect(second.result == .promoted("v0001"), "\(second.reason)")
        #expect(seen.first == "encoding" && seen.contains("training, epoch 1/12") && seen.suffix(2) == ["evaluating", "recording"])
        let m1 = try models.metrics("v0001")
        let cand = try #require(m1.validation), cur = try #require(m1.parentValidation)
        #expect(cand.classes.map(\.name) == ["RV", "Myo", "LV"] && cand.frames == 2)
        #expect(cand.meanDice > cur.meanDice + 0.03, "trained \(cand.meanDice) vs untrained \(cur.meanDice)")
        #expect(m1.trainingCases == ["case0002"] && m1.validationCases == ["case0001"] && m1.trainingVolumes == 2)
        #expect(m1.parent == nil && m1.decision.status == .promoted && m1.events.map(\.action) == ["promoted"])
        #expect(try models.current(encoder: enc.identity) == "v0001")
        let poolBytes = try Data(contentsOf: URL(fileURLWithPath: store.poolPath))

        // A bad candidate (a fresh head trained 0 epochs) against v0001: rejected, v0001 stays.
        // A larger pool size asked later does not change the frozen pool; the new case trains.
        let store2 = try TrainingStore(root: store.root, validationPoolSize: 3)
        try store2.add(ed: p3[0], source: "phantom 3, ED only")
        let v1 = try #require(try models.currentModel(encoder: enc.identity))
        var bad = options(epochs: 0)
        bad.warmStart = false
        let third = try Refit.run(
            training: store2, models: models, current: VersionedHead(version: v1.version, head: v1.head, metadata: v1.metadata),
            encoder: enc, cache: cache, options: bad)
        #expect(third.result == .rejected("v0002"), "\(third.reason)")
        #expect(try models.current() == "v0001")
        let m2 = try models.metrics("v0002")
        #expect(m2.decision.status == .rejected && m2.parent == "v0001" && m2.events.isEmpty)
        #expect(m2.trainingCases == ["case0002", "case0003"] && m2.trainingVolumes == 3)
        // The pool is identical across the refits, and v0001 scores the same on it again.
        #expect(m2.validationCases == m1.validationCases)
        #expect(try Data(contentsOf: URL(fileURLWithPath: store.poolPath)) == poolBytes)
        #expect(try #require(m2.parentValidation).meanDice == cand.meanDice)
        // The embeddings of the pool were computed once and reused.
        #expect(cache.hits > 0)
    }

    @Test func abortStopsTheRefitAtOnceAndAProceedingHookChangesNothing() throws {
        let enc = try Self.encoder.get()
        let dir = try tempDir()
        let store = try TrainingStore(root: dir + "/training")
        let models = try ModelStore(root: dir + "/models")
        let p1 = try PhantomCases.frames(patient: 4, slices: 2, dir: dir + "/ph"), p2 = try PhantomCases.frames(patient: 5, slices: 2, dir: dir + "/ph")
        try store.add(ed: p1[0], source: "a")
        try store.add(ed: p2[0], source: "b")
        let atTraining = try Refit.run(training: store, models: models, current: defaultHead(enc), encoder: enc, cache: nil, options: options(epochs: 3)) {
            $0.phase == .training ? .abort : .proceed
        }
        #expect(atTraining.result == .aborted && atTraining.reason == "aborted before training")
        // Abort after the first of 1000 epochs: the run returns at once, not after the rest.
        var calls: [(RefitCheckpoint, Date)] = []
        let afterEpoch = try Refit.run(training: store, models: models, current: defaultHead(enc), encoder: enc, cache: nil, options: options(epochs: 1000)) {
            calls.append(($0, Date()))
            return $0.epoch == 1 ? .abort : .proceed
        }
        let end = Date()
        #expect(afterEpoch.result == .aborted && afterEpoch.reason == "aborted during training (after 1 epochs)")
        #expect(calls.map(\.0.description) == ["encoding", "training", "training, epoch 1/1000"])
        let epoch = calls[2].1.timeIntervalSince(calls[1].1), after = end.timeIntervalSince(calls[2].1)
        #expect(after < 10 * epoch + 0.5, "returned \(after) s after epoch 1, which took \(epoch) s")
        #expect(try models.versions().isEmpty && models.current() == nil)
        // A hook that lets every epoch proceed changes nothing: training with and without one
        // (its own thread, or the caller's) gives the same candidate.
        var epochsSeen = 0
        let hooked = try Refit.run(training: store, models: models, current: defaultHead(enc), encoder: enc, cache: nil, options: options(epochs: 3)) {
            if $0.epoch != nil { epochsSeen += 1 }
            return .proceed
        }
        let plain = try Refit.run(training: store, models: models, current: defaultHead(enc), encoder: enc, cache: nil, options: options(epochs: 3))
        #expect(epochsSeen == 3 && hooked.version == "v0001" && plain.version == "v0002")
        #expect(try models.metrics("v0001").validation == models.metrics("v0002").validation)
        #expect(hooked.candidate == plain.candidate)
    }

    /// A warm start copies the current head, whatever its kind, without sharing its weights.
    @Test func warmStartCopiesTheHeadOfEveryKind() throws {
        var c = SAMConfig.tiny
        c.decoderHeads = 2
        let sam = try AutoSAMHead(sam: RandomWeights.promptEncoderAndMaskDecoder(c, seed: 3), config: c, classes: 4, seed: 5)
        let heads: [SegmentationHead] = [sam, LinearHead(inChannels: c.outChannels, classes: 4, seed: 2)]
        var r = Initializer(state: 9)
        let g = c.gridSize
        let embedding = Tensor(shape: [c.outChannels, g, g], data: (0..<(c.outChannels * g * g)).map { _ in r.uniform() })
        for head in heads {
            let meta = HeadMetadata(
                kind: head.kind, classes: CardiacLabel.allCases.map(\.name), inChannels: c.outChannels, encoder: "random tiny seed 1",
                encoderSize: "tiny", plan: .robust(encoderSize: 224), trainingPatients: [], validationPatients: [], validationDice: 0,
                epochs: 0, options: TrainingOptions(), created: "now", software: "test", decoderHeads: c.decoderHeads, decoderDepth: c.decoderDepth)
            let copy = try Refit.startingHead(VersionedHead(version: "v0001", head: head, metadata: meta), fresh: false, seed: 77, channels: c.outChannels)
            #expect(copy !== head && copy.kind == head.kind)
            let before = Autograd.withoutGrad { head.forward(Variable(embedding)) }.value
            #expect(Autograd.withoutGrad { copy.forward(Variable(embedding)) }.value == before)
            // Training the copy must not move the original.
            for (_, v) in copy.parameters { v.value = Tensor(repeating: 0.5, shape: v.value.shape) }
            #expect(Autograd.withoutGrad { head.forward(Variable(embedding)) }.value == before)
        }
        // A fresh AutoSAM head cannot be made without SAM's decoder: a clear error, not a guess.
        let meta = HeadMetadata(
            kind: .autosam, classes: CardiacLabel.allCases.map(\.name), inChannels: c.outChannels, encoder: "e", encoderSize: "tiny",
            plan: .robust(encoderSize: 224), trainingPatients: [], validationPatients: [], validationDice: 0, epochs: 0,
            options: TrainingOptions(), created: "now", software: "test")
        #expect(throws: RefitError.self) {
            _ = try Refit.startingHead(VersionedHead(version: nil, head: sam, metadata: meta), fresh: true, seed: 1, channels: c.outChannels)
        }
    }

    @Test func badInputAndDamagedStoreFilesGiveSpecificErrors() throws {
        let enc = try Self.encoder.get()
        let dir = try tempDir()
        let store = try TrainingStore(root: dir + "/training")
        let models = try ModelStore(root: dir + "/models")
        let p = try PhantomCases.frames(patient: 6, slices: 2, dir: dir + "/ph")
        let (image, labels) = p[0]
        // Labels on another grid, label values outside the classes, a cine, a single slice.
        let other = PhantomCases.cut(image, labels, slices: 1)
        #expect(throws: RefitError.self) { try store.add(ed: (image, other.labels), source: "x") }
        var seven = labels
        seven.labels[0] = 7
        #expect {
            try store.add(ed: (image, seven), source: "x")
        } throws: { e in
            guard case RefitError.invalidCase(let s) = e else { return false }
            return s.contains("value 7")
        }
        #expect(throws: RefitError.invalidCase("the ED image has 1 slice(s); at least 2 are needed")) { try store.add(ed: other, source: "x") }
        #expect(try store.cases().isEmpty)

        try store.add(ed: p[0], source: "a")
        try store.add(ed: p[1], source: "b")
        // A current head for another encoder.
        var foreign = defaultHead(enc)
        foreign.metadata.encoder = "vit_b feedbeef"
        #expect(throws: ModelStoreError.self) {
            _ = try Refit.run(training: store, models: models, current: foreign, encoder: enc, cache: nil, options: options(epochs: 1))
        }
        // A damaged pool file and a damaged case record.
        try AtomicFile.write("[\"case0001\"", to: store.poolPath)
        #expect {
            _ = try Refit.run(training: store, models: models, current: defaultHead(enc), encoder: enc, cache: nil, options: options(epochs: 1))
        } throws: { e in
            guard case RefitError.corruptPool(let path, _) = e else { return false }
            return path == store.poolPath
        }
        try FileManager.default.removeItem(atPath: store.poolPath)
        try AtomicFile.write("{}", to: store.folder(of: "case0002") + "/case.json")
        #expect {
            _ = try store.cases()
        } throws: { e in
            guard case RefitError.corruptCase(let id, _) = e else { return false }
            return id == "case0002"
        }
        #expect(try models.versions().isEmpty)
    }
}
