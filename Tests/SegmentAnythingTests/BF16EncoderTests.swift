import Foundation
import Testing

@testable import NN
@testable import SegmentAnything
@testable import Tensor

/// The opt-in bf16 precision mode (fused bias + GELU inside oneDNN's matmul, AMX where the CPU
/// has it) against the official encoder's outputs: bf16 has an 8-bit mantissa, so the bound is
/// 2e-2 of the reference magnitude (full-size vit_b measures 6e-3, docs/PERFORMANCE.md), not
/// the fp32 parity bound; and it must not be the fp32 result in disguise.
@Suite struct BF16EncoderTests {
    @Test func bf16EncoderStaysNearTheOfficialOutputs() throws {
        let f = try SAMFixture("tiny_a")
        let s = f.config.imageSize
        let image = try f.tensor("image").reshaped([3, s, s])
        let bf16 = try ImageEncoderViT(config: f.config, weights: f.store, precision: .bf16)
        let out = bf16(image)
        let neck = try f.tensor("neck")
        let e = relativeError(out, neck)
        print("tiny_a bf16: image embedding max abs error \(e) of the reference's max magnitude")
        #expect(e <= 2e-2, "bf16 error \(e)")
        let fp32 = try ImageEncoderViT(config: f.config, weights: try SAMFixture("tiny_a").store)(image)
        #expect(relativeError(out, fp32) > 1e-6, "bf16 ran in fp32")
    }
}

/// The MLP runs in row chunks when a grid has more tokens than a chunk (vit_b's 4096): the
/// result must be the unchunked one.
@Suite struct EncoderChunkingTests {
    @Test func chunkedMLPEqualsOnePass() throws {
        var c = SAMConfig.tiny
        c.imageSize = 576  // 36 x 36 = 1296 tokens > 1024
        let weights = RandomWeights.imageEncoder(c, seed: 3)
        let chunked = try ImageEncoderViT(config: c, weights: weights)
        var whole = try ImageEncoderViT(config: c, weights: RandomWeights.imageEncoder(c, seed: 3))
        whole.mlpRowChunk = Int.max
        var g = SplitMix64(seed: 9)
        let image = Tensor(shape: [3, 576, 576], data: (0..<(3 * 576 * 576)).map { _ in Float(g.unit() * 4 - 2) })
        let a = chunked(image), b = whole(image)
        let scale = b.data.map(abs).max()!
        let err = zip(a.data, b.data).map { abs($0 - $1) }.max()!
        #expect(a.shape == b.shape && err <= 1e-5 * scale, "\(err) vs \(scale)")
    }
}
