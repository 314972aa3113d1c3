import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// The fixture's prompt case `c` (a, b or c) as PromptEncoder inputs.
struct PromptCase {
    var points: Tensor?
    var labels: [Int]?
    var box: Tensor?
    var mask: Tensor?

    init(_ f: SAMFixture, _ c: String) {
        // (1, N, 2) -> [N, 2]; (1, N) float labels -> [Int]; (1, 4) -> [4]; (1, 1, 4h, 4w) -> [1, 4h, 4w]
        points = f.io["pe_\(c)_points"].map { $0.reshaped([-1, 2]) }
        labels = f.io["pe_\(c)_labels"].map { $0.data.map { Int($0) } }
        box = f.io["pe_\(c)_boxes"].map { $0.reshaped([4]) }
        mask = f.io["pe_\(c)_mask"].map { $0.reshaped(Array($0.shape.dropFirst())) }
    }
}

/// Compares `ours` with the fixture tensor `key` (its leading batch axis of 1 dropped):
/// same shape, max abs error within parityTolerance of the reference's max magnitude.
@discardableResult
func expectParity(_ ours: Tensor, _ f: SAMFixture, _ key: String, dropBatch: Bool = true) throws -> Float {
    var ref = try f.tensor(key)
    if dropBatch {
        #expect(ref.shape.first == 1, "\(key) has batch \(ref.shape)")
        ref = ref.reshaped(Array(ref.shape.dropFirst()))
    }
    #expect(ours.shape == ref.shape, "\(f.name) \(key): shape \(ours.shape) vs reference \(ref.shape)")
    guard ours.shape == ref.shape else { return .infinity }
    let e = relativeError(ours, ref)
    #expect(e <= parityTolerance, "\(f.name) \(key): relative max error \(e)")
    print("\(f.name) \(key): max abs error \(e) of the reference's max magnitude \(ref.maxAbs)")
    return e
}

@Suite struct PromptEncoderParityTests {
    @Test(arguments: ["tiny_a", "tiny_b"])
    func densePositionalEncodingMatchesGetDensePE(name: String) throws {
        let f = try SAMFixture(name)
        let pe = try PromptEncoder(config: f.config, weights: f.store)
        try expectParity(pe.densePositionalEncoding(), f, "dense_pe")
    }

    @Test(arguments: ["tiny_a", "tiny_b"], ["a", "b", "c"])
    func embeddingsMatchTheOfficialPromptEncoder(name: String, promptCase: String) throws {
        let f = try SAMFixture(name)
        let pe = try PromptEncoder(config: f.config, weights: f.store)
        let p = PromptCase(f, promptCase)
        let (sparse, dense) = pe(points: p.points, labels: p.labels, box: p.box, mask: p.mask)
        let tokens = ["a": 4, "b": 2, "c": 4][promptCase]!
        #expect(sparse.shape == [tokens, f.config.outChannels])
        try expectParity(sparse, f, "pe_\(promptCase)_sparse")
        try expectParity(dense, f, "pe_\(promptCase)_dense")
    }

    @Test func labelsSelectTheirEmbeddings() throws {
        let f = try SAMFixture("tiny_a")
        let pe = try PromptEncoder(config: f.config, weights: f.store)
        let d = f.config.outChannels
        let pts = Tensor(shape: [3, 2], data: [10, 20, 30, 40, 50, 60])
        // A box suppresses the padding point; label -1 gives exactly not_a_point_embed.
        let (sparse, _) = pe(points: pts, labels: [-1, 0, 1], box: Tensor(shape: [4], data: [1, 2, 100, 120]))
        #expect(sparse.shape == [5, d])
        #expect(Array(sparse.data[0..<d]) == pe.notAPoint.data)
        let bare = pe.pe.encode(coords: Tensor(shape: [3, 2], data: pts.data.map { $0 + 0.5 }), imageSize: pe.inputImageSize)
        for j in 0..<d {
            #expect(sparse.data[d + j] == bare.data[d + j] + pe.pointEmbeddings[0].data[j])
            #expect(sparse.data[2 * d + j] == bare.data[2 * d + j] + pe.pointEmbeddings[1].data[j])
        }
        // No prompt at all: no sparse tokens, no_mask_embed everywhere.
        let (none, dense) = pe()
        #expect(none.shape == [0, d])
        #expect(dense.shape == [d, f.config.gridSize, f.config.gridSize])
        #expect(dense.data[5 * f.config.gridSize * f.config.gridSize] == pe.noMask.data[5])
    }

    @Test func loadingIsStrict() throws {
        let f = try SAMFixture("tiny_a")
        var bad = f.store.tensors
        bad["prompt_encoder.mask_downscaling.3.weight"] = Tensor(zeros: [16, 4, 3, 3])
        #expect(throws: CheckpointError.shapeMismatch(key: "prompt_encoder.mask_downscaling.3.weight", expected: [16, 4, 2, 2], found: [16, 4, 3, 3])) {
            _ = try PromptEncoder(config: f.config, weights: ParameterStore(bad))
        }
        bad = f.store.tensors
        bad["prompt_encoder.point_embeddings.3.weight"] = nil
        #expect(throws: CheckpointError.missingKey("prompt_encoder.point_embeddings.3.weight")) {
            _ = try PromptEncoder(config: f.config, weights: ParameterStore(bad))
        }
    }
}
