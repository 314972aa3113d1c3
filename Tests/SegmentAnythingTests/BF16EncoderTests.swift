import CKernels
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
    static let noBF16 = "this CPU has no bfloat16 products (oneDNN ISA \(CPUCapabilities.onednnISA)): bf16 runs in fp32 here, checked by bf16RequestRunsAsReported"

    @Test(.enabled(if: CPUCapabilities.bf16Available, Comment(rawValue: noBF16)))
    func bf16EncoderStaysNearTheOfficialOutputs() throws {
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
        #expect(bf16.precisionChoice == PrecisionChoice(requested: .bf16, effective: .bf16, note: nil))
    }

    /// On every CPU: a bf16 request runs in bf16 where oneDNN makes bfloat16 products and
    /// otherwise in fp32, reported as such with one line that says why; never a silent switch.
    @Test func bf16RequestRunsAsReported() throws {
        let f = try SAMFixture("tiny_a")
        let s = f.config.imageSize
        let image = try f.tensor("image").reshaped([3, s, s])
        let asked = try ImageEncoderViT(config: f.config, weights: f.store, precision: .bf16)
        let fp32 = try ImageEncoderViT(config: f.config, weights: try SAMFixture("tiny_a").store)
        #expect(fp32.precisionChoice == PrecisionChoice(requested: .fp32, effective: .fp32, note: nil))
        if CPUCapabilities.bf16Available {
            #expect(asked.precisionChoice.effective == .bf16 && asked.precisionChoice.note == nil)
            #expect(asked(image) != fp32(image), "bf16 reported but the output is the fp32 one")
        } else {
            #expect(asked.precisionChoice.effective == .fp32)
            let note = try #require(asked.precisionChoice.note)
            #expect(note.contains("running in fp32") && note.contains(CPUCapabilities.onednnISA), "\(note)")
            #expect(asked(image) == fp32(image), "fp32 reported but the output is not the fp32 one")
        }
    }

    /// The rule itself, for both kinds of CPU whichever this one is.
    @Test func precisionResolution() {
        let without = Precision.resolve(.bf16, bf16Available: false)
        #expect(without.requested == .bf16 && without.effective == .fp32)
        #expect(without.note?.contains("no bfloat16 matrix products") == true, "\(String(describing: without.note))")
        #expect(Precision.resolve(.bf16, bf16Available: true) == PrecisionChoice(requested: .bf16, effective: .bf16, note: nil))
        for available in [false, true] {
            #expect(Precision.resolve(.fp32, bf16Available: available) == PrecisionChoice(requested: .fp32, effective: .fp32, note: nil))
        }
    }
}

/// A bf16 layer can hand its output to the next one in bfloat16 (the encoder's MLP does):
/// the result is the same as writing float32 and converting it (both round to nearest even
/// after the bias and GELU), bit for bit; a float32 layer has no such output.
@Suite struct BF16HiddenActivationTests {
    @Test(.enabled(if: CPUCapabilities.bf16Available, Comment(rawValue: BF16EncoderTests.noBF16)))
    func bf16OutputEqualsFloatOutputConverted() throws {
        var g = SplitMix64(seed: 5)
        func random(_ shape: [Int], _ scale: Double) -> Tensor {
            Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float((g.unit() * 2 - 1) * scale) })
        }
        let x = random([300, 96], 2), w1 = random([160, 96], 0.2), b1 = random([160], 0.5), w2 = random([64, 160], 0.2)
        let lin1 = Linear(weight: w1, bias: b1, precision: .bf16, activation: .gelu)
        let lin2 = Linear(weight: w2, bias: nil, precision: .bf16)
        try #require(lin1.precision == .bf16 && lin2.precision == .bf16, "oneDNN made no bf16 matmul on this CPU")
        let hidden = try #require(lin1.bf16Output(x))
        #expect(hidden.rows == 300 && hidden.columns == 160)
        let viaBF16 = lin2(hidden), viaFloat = lin2(lin1(x))
        #expect(viaBF16.shape == [300, 64])
        #expect(viaBF16.data == viaFloat.data)
        #expect(Linear(weight: w1, bias: b1, activation: .gelu).bf16Output(x) == nil)
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

/// The bf16 attention's fused kernel (relative-position bias, softmax numerators rounded to
/// bfloat16, 1 / row sums) against the float32 path it replaces (asn_add_rel_pos, then the
/// row softmax), on a non-square grid and a row block that does not start at 0.
@Suite struct FusedRelPosSoftmaxTests {
    @Test func matchesBiasThenSoftmaxWithinBF16Rounding() {
        let (gh, gw, hd, rows, r0) = (7, 9, 8, 5, 11)
        let n = gh * gw
        var g = SplitMix64(seed: 21)
        func random(_ count: Int, _ scale: Double) -> [Float] { (0..<count).map { _ in Float((g.unit() * 2 - 1) * scale) } }
        let scores = random(rows * n, 6), q = random(rows * hd, 1)
        let relH = random(gh * gh * hd, 1), relW = random(gw * gw * hd, 1)
        for withBias in [true, false] {
            var expected = scores
            if withBias { asn_add_rel_pos(&expected, rows, r0, q, hd, hd, relH, relW, gh, gw) }
            expected.withUnsafeMutableBufferPointer { asn_softmax_rows($0.baseAddress!, rows, n) }
            var numerators = [UInt16](repeating: 0, count: rows * n), inv = [Float](repeating: 0, count: rows)
            let rc = relH.withUnsafeBufferPointer { rh in
                relW.withUnsafeBufferPointer { rw in
                    asn_rel_pos_softmax_bf16(scores, rows, r0, q, hd, hd, withBias ? rh.baseAddress : nil,
                                             withBias ? rw.baseAddress : nil, gh, gw, &numerators, &inv)
                }
            }
            #expect(rc == 0)
            var worst: Float = 0
            for r in 0..<rows {
                for i in 0..<n {
                    let e = Float(bitPattern: UInt32(numerators[r * n + i]) << 16)
                    #expect(e > 0 && e <= 1, "numerator \(e)")
                    worst = max(worst, abs(e * inv[r] - expected[r * n + i]))
                }
            }
            // bfloat16 keeps 8 significant bits: a relative error of at most 2^-9 per value.
            #expect(worst <= 2e-3, "bias \(withBias): max abs error \(worst)")
        }
    }
}
