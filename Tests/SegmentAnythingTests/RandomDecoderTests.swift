import NN
import Tensor
import Testing

@testable import SegmentAnything

@Suite struct RandomDecoderTests {
    /// The random prompt encoder and mask decoder (used with the random demo encoder) have
    /// exactly the official modules' keys and shapes: the strict loaders take every tensor and
    /// leave none, and the decoder runs to finite masks.
    @Test(arguments: ["demo", "tiny", "vit_b"])
    func randomDecoderHasTheOfficialKeys(name: String) throws {
        let c = try #require(SAMConfig.named(name))
        let t = RandomWeights.promptEncoderAndMaskDecoder(c, seed: 1)
        let store = ParameterStore(t)
        let prompt = try PromptEncoder(config: c, weights: store)
        let decoder = try MaskDecoder(config: c, weights: store)
        try store.finish()
        guard name == "demo" else { return }
        let g = c.gridSize
        var r = RandomWeights.Generator(state: 5)
        let emb = Tensor(shape: [c.outChannels, g, g], data: (0..<(c.outChannels * g * g)).map { _ in r.normal(1) })
        let box = Tensor(shape: [4], data: [40, 50, 120, 140])
        let (sparse, dense) = prompt(box: box)
        let out = decoder(imageEmbedding: emb, imagePE: prompt.densePositionalEncoding(), sparse: sparse, dense: dense, multimaskOutput: false)
        #expect(out.masks.shape == [1, 4 * g, 4 * g])
        #expect(out.masks.data.allSatisfy { $0.isFinite })
    }
}
