import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// Parity fixtures made by scripts/fixtures/make_sam_fixtures.py with the official
/// segment_anything package: random checkpoints of small SAM configurations, inputs, and
/// the official outputs.
struct SAMFixture {
    let name: String
    let config: SAMConfig
    let store: ParameterStore
    let io: [String: Tensor]
    /// The fixture's JSON description (sizes, prompt cases, postprocess sizes).
    let json: [String: Any]

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    init(_ name: String) throws {
        self.name = name
        let json = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: "\(Self.folder)/\(name).json"))) as! [String: Any]
        let tensors = try TorchCheckpoint.load("\(Self.folder)/\(name).pth")
        var cfg = try SAMCheckpoint.inferConfig(tensors, name: name)
        let enc = json["image_encoder"] as! [String: Any]
        #expect(cfg.numHeads == enc["num_heads"] as? Int)
        #expect(cfg.windowSize == enc["window_size"] as? Int)
        #expect(cfg.globalAttentionIndexes == enc["global_attn_indexes"] as? [Int])
        let md = json["mask_decoder"] as! [String: Any], tr = md["transformer"] as! [String: Any]
        cfg.decoderHeads = tr["num_heads"] as! Int
        let pe = json["prompt_encoder"] as! [String: Any]
        #expect(cfg.maskInChannels == pe["mask_in_chans"] as? Int)
        #expect(cfg.decoderDepth == tr["depth"] as? Int && cfg.decoderMLPDim == tr["mlp_dim"] as? Int)
        #expect(cfg.multimaskOutputs == md["num_multimask_outputs"] as? Int)
        #expect(cfg.iouHeadDepth == md["iou_head_depth"] as? Int && cfg.iouHeadHiddenDim == md["iou_head_hidden_dim"] as? Int)
        self.json = json
        config = cfg
        store = ParameterStore(tensors)
        io = try SafeTensors.load("\(Self.folder)/\(name)_io.safetensors").tensors
    }

    func tensor(_ key: String) throws -> Tensor {
        guard let t = io[key] else { throw CheckpointError.missingKey(key) }
        return t
    }
}

/// Max abs error relative to the reference's max magnitude.
func relativeError(_ ours: Tensor, _ reference: Tensor) -> Float {
    precondition(ours.count == reference.count, "\(ours.shape) vs \(reference.shape)")
    var m: Float = 0
    for i in 0..<ours.count { m = max(m, abs(ours.data[i] - reference.data[i])) }
    return m / max(reference.maxAbs, 1e-12)
}

let parityTolerance: Float = 1e-4
