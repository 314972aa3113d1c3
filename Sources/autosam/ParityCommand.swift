import ArgumentParser
import Foundation
import NN
import SegmentAnything
import Tensor

struct ParityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Compare our image encoder with reference outputs (full-size vit_b from scripts/fixtures/vit_b_parity.py; LiteMedSAM from make_litemedsam_fixtures.py --full-precision-out).",
        discussion: """
            The reference file is a safetensors file holding `image` (1,3,S,S, the normalised encoder \
            input) and `neck` (the official image embeddings). Fails when the max abs error exceeds the \
            tolerance times the reference's max magnitude.
            """)

    @Option(help: "Checkpoint (.pth or .safetensors).") var checkpoint: String
    @Option(help: "Reference inputs and outputs (.safetensors).") var reference: String
    @Option(help: "Allowed max abs error relative to the reference's max magnitude.") var tolerance: Float = 1e-4
    @Option(help: "Precision of the large products: fp32 or bf16.") var precision: Precision = .fp32

    func run() throws {
        let t = try SAMCheckpoint.tensors(checkpoint)
        let config = try SAMCheckpoint.inferConfig(t)
        let store = ParameterStore(t)
        let encoder = try ImageEncoders.load(config: config, weights: store, precision: precision)
        let id = try CheckpointIdentity.of(checkpoint)
        print("checkpoint \(id.file) (\(config.name)), sha256 \(id.sha256), precision \(encoder.precisionChoice.effective.rawValue)")
        if let note = encoder.precisionChoice.note { print(note) }
        let ref = try SafeTensors.load(reference).tensors
        guard let image = ref["image"], let neck = ref["neck"] else { throw ValidationError("reference needs `image` and `neck`") }
        let s = image.shape[2]
        let start = Date()
        let out = encoder.encode(image.reshaped([3, s, image.shape[3]]))
        let secs = Date().timeIntervalSince(start)
        var maxErr: Float = 0
        for i in 0..<out.count { maxErr = max(maxErr, abs(out.data[i] - neck.data[i])) }
        let rel = maxErr / neck.maxAbs
        print(String(format: "image embeddings %@: max abs error %.3g, reference max magnitude %.3g, relative %.3g (tolerance %.1g); %.2f s",
                     "\(out.shape)", maxErr, neck.maxAbs, rel, tolerance, secs))
        if !(rel <= tolerance) { throw ExitCode(1) }
    }
}
