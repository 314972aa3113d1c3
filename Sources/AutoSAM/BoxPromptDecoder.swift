import NN
import SegmentAnything
import Tensor

/// A SAM model's prompt encoder and mask decoder answering one box with one mask, as
/// SamPredictor with a box and `multimask_output=False`: what the box-prompt baseline and the
/// box refinement share.
struct BoxPromptDecoder: Sendable {
    let prompts: PromptEncoder
    let decoder: MaskDecoder
    let imagePE: Tensor

    /// `sam`: the prompt encoder and mask decoder tensors (`FrozenEncoder.samTensors()`).
    init(config: SAMConfig, sam: [String: Tensor]) throws {
        let store = ParameterStore(sam)
        prompts = try PromptEncoder(config: config, weights: store)
        decoder = try MaskDecoder(config: config, weights: store)
        imagePE = prompts.densePositionalEncoding()
    }

    /// Mask logits [1, 4g, 4g] for the box (x0, y0, x1, y1) in the encoder's input frame.
    func mask(_ embedding: Tensor, box: (Int, Int, Int, Int)) -> Tensor {
        let (sparse, dense) = prompts(box: Tensor(shape: [4], data: [Float(box.0), Float(box.1), Float(box.2), Float(box.3)]))
        return decoder(imageEmbedding: embedding, imagePE: imagePE, sparse: sparse, dense: dense, multimaskOutput: false).masks
    }
}
