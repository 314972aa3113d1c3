import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import Tensor

@Suite struct ModelStoreTests {
    func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "models-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    static let encoder = "random tiny seed 1"

    func candidate(seed: UInt64, encoder: String = encoder) -> (SegmentationHead, HeadMetadata, ModelMetrics) {
        let head = LinearHead(inChannels: 16, classes: 4, seed: seed)
        let meta = HeadMetadata(
            kind: .linear, classes: CardiacLabel.allCases.map(\.name), inChannels: 16, encoder: encoder, encoderSize: "tiny",
            plan: .robust(encoderSize: 224), trainingPatients: ["case0002"], validationPatients: ["case0001"], validationDice: 0.5,
            epochs: 3, options: TrainingOptions(), created: "2026-12-01T00:00:00Z", software: "test")
        let score = ValidationScore(
            classes: [ClassScore(label: 1, name: "RV", dice: 0.4, assd: 3.5), ClassScore(label: 2, name: "Myo", dice: 0.5, assd: nil),
                      ClassScore(label: 3, name: "LV", dice: 0.6, assd: 2)],
            meanDice: 0.5, meanASSD: nil, frames: 2, perFrame: ["case0001 frame 1": 0.5, "case0001 frame 2": 0.5])
        let metrics = ModelMetrics(
            created: meta.created, parent: nil, encoder: encoder, headKind: .linear, trainingCases: ["case0002"], trainingVolumes: 2,
            validationCases: ["case0001"], validation: score, parentValidation: nil, tolerance: 0.01, epochs: 3, trainingSeconds: 1,
            decision: ModelDecision(status: .pending, reason: "test", date: meta.created))
        return (head, meta, metrics)
    }

    @discardableResult
    func add(_ store: ModelStore, seed: UInt64, encoder: String = encoder) throws -> String {
        let (h, m, x) = candidate(seed: seed, encoder: encoder)
        return try store.add(head: h, metadata: m, metrics: x)
    }

    @Test func emptyStoreHasNoCurrentAndCannotRollBack() throws {
        let store = try ModelStore(root: try tempDir() + "/models")
        #expect(try store.versions().isEmpty)
        #expect(try store.current() == nil)
        #expect(try store.currentModel() == nil)
        #expect(throws: ModelStoreError.emptyStore(store.root)) { try store.rollback() }
        #expect(throws: ModelStoreError.unknownVersion("v0001", available: [])) { try store.promote("v0001") }
    }

    @Test func versionsAreNumberedAndKeepTheirMetricsAndWeights() throws {
        let store = try ModelStore(root: try tempDir())
        let (head, _, metrics) = candidate(seed: 7)
        #expect(try add(store, seed: 7) == "v0001")
        #expect(try add(store, seed: 8) == "v0002")
        // Leftovers of an interrupted add are not versions, and do not take a number.
        try FileManager.default.createDirectory(atPath: store.root + "/.staging-dead", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: store.root + "/v0003", withIntermediateDirectories: true)
        #expect(try store.versions() == ["v0001", "v0002"])
        #expect(try add(store, seed: 9) == "v0004")
        var expected = metrics
        expected.version = "v0001"
        #expect(try store.metrics("v0001") == expected)
        // Adding does not make a version current.
        #expect(try store.current() == nil)
        let loaded = try store.load("v0001")
        let e = Tensor(shape: [16, 2, 2], data: (0..<64).map { Float($0 % 7) / 7 })
        #expect(Trainer.predict(loaded.head, e) == Trainer.predict(head, e))
        #expect(loaded.version == "v0001" && loaded.metadata.encoder == Self.encoder)
    }

    @Test func promoteAndRollbackRoundTrip() throws {
        let store = try ModelStore(root: try tempDir())
        for s in 1...3 { try add(store, seed: UInt64(s)) }
        try store.promote("v0001")
        try store.promote("v0003")
        #expect(try store.current() == "v0003")
        // Promoting the current version again changes nothing (no duplicate history entry).
        try store.promote("v0003")
        #expect(try store.rollback() == "v0001")
        #expect(try store.current() == "v0001")
        // Back past the first promotion: the embedded default (no current version).
        #expect(try store.rollback() == nil)
        #expect(try store.current() == nil)
        #expect(throws: ModelStoreError.nothingToRollBackTo) { try store.rollback() }
        try store.promote("v0002")
        #expect(try store.current() == "v0002")
        let events = try store.metrics("v0003").events.map(\.action)
        #expect(events == ["promoted", "rolled back"])
        #expect(try store.metrics("v0001").events.map(\.action) == ["promoted", "rolled back"])
        #expect(throws: ModelStoreError.unknownVersion("v0009", available: ["v0001", "v0002", "v0003"])) { try store.promote("v0009") }
        // The pointer file is complete JSON naming the version, with no temporary file left.
        let names = try FileManager.default.contentsOfDirectory(atPath: store.root).filter { $0.hasPrefix(".") }
        #expect(names.isEmpty)
    }

    @Test func versionsForAnotherEncoderAreRefused() throws {
        let store = try ModelStore(root: try tempDir())
        try add(store, seed: 1)
        try add(store, seed: 2, encoder: "vit_b 0123abcd")
        try store.promote("v0001")
        // Not the current version's encoder.
        #expect(throws: ModelStoreError.encoderMismatch(version: "v0002", versionEncoder: "vit_b 0123abcd", expected: Self.encoder)) {
            try store.promote("v0002")
        }
        #expect(try store.current() == "v0001")
        // The daemon asks for the current version of the encoder it runs.
        #expect(throws: ModelStoreError.encoderMismatch(version: "v0001", versionEncoder: Self.encoder, expected: "vit_b 0123abcd")) {
            _ = try store.current(encoder: "vit_b 0123abcd")
        }
        // Explicitly for that encoder, the operator may switch.
        try store.promote("v0002", encoder: "vit_b 0123abcd")
        #expect(try store.current(encoder: "vit_b 0123abcd") == "v0002")
        // Metrics and head metadata must agree on the encoder.
        var (h, m, x) = candidate(seed: 3)
        x.encoder = "other"
        #expect(throws: ModelStoreError.self) { try store.add(head: h, metadata: m, metrics: x) }
        m.encoder = "other"
        #expect(try store.add(head: h, metadata: m, metrics: x) == "v0003")
    }

    @Test func corruptPointerAndMetricsGiveSpecificErrors() throws {
        let store = try ModelStore(root: try tempDir())
        try add(store, seed: 1)
        try add(store, seed: 2)
        try store.promote("v0002")
        let pointer = try String(contentsOfFile: store.pointerPath, encoding: .utf8)
        try AtomicFile.write("v0002 garbage {", to: store.pointerPath)
        #expect {
            _ = try store.current()
        } throws: { e in
            guard case ModelStoreError.corruptPointer(let path, _) = e else { return false }
            return path == store.pointerPath
        }
        #expect(throws: ModelStoreError.self) { try store.rollback() }
        // A pointer naming a version that is not there.
        try AtomicFile.write(pointer.replacingOccurrences(of: "v0002", with: "v0042"), to: store.pointerPath)
        #expect(throws: ModelStoreError.corruptPointer(path: store.pointerPath, reason: "it names v0042, which is not in the store")) {
            _ = try store.current()
        }
        try AtomicFile.write(pointer, to: store.pointerPath)
        #expect(try store.current() == "v0002")
        // Damaged metrics.
        try AtomicFile.write("{\"version\": 3", to: store.path(of: "v0001") + "/metrics.json")
        #expect {
            _ = try store.metrics("v0001")
        } throws: { e in
            guard case ModelStoreError.corruptMetrics(let v, _) = e else { return false }
            return v == "v0001"
        }
        // Damaged weights.
        try AtomicFile.write("nope", to: store.path(of: "v0002") + "/head.safetensors")
        #expect {
            _ = try store.currentModel()
        } throws: { e in
            guard case ModelStoreError.corruptModel(let v, _) = e else { return false }
            return v == "v0002"
        }
    }
}
