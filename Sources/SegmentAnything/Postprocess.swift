import Tensor

// Port of `Sam.postprocess_masks` from segment-anything `modeling/sam.py`
// (facebookresearch/segment-anything, commit dca509fe793f601edb92606367a655c15ac00fdf).

/// Turning the decoder's low-resolution mask logits into logits at the original image size.
public enum Postprocess {
    /// masks[K, h', w'] -> bilinear to [K, S, S] (S = the encoder's input size) -> crop to the
    /// resized image inside the padding, inputSize (H, W) -> bilinear to originalSize.
    /// Bilinear is F.interpolate's (align_corners = False, no antialias). Logits, not thresholded.
    public static func masks(_ masks: Tensor, imageSize s: Int, inputSize: (height: Int, width: Int),
                             originalSize: (height: Int, width: Int)) -> Tensor {
        precondition(inputSize.height <= s && inputSize.width <= s, "input size \(inputSize) exceeds \(s)")
        let k = masks.shape[0]
        let full = Resize.bilinear(masks, height: s, width: s)
        // [K, S, S] -> [K, H, W]: masks[..., :H, :W]
        let (ih, iw) = inputSize
        var cropped = [Float](repeating: 0, count: k * ih * iw)
        for c in 0..<k {
            for y in 0..<ih {
                let src = (c * s + y) * s, dst = (c * ih + y) * iw
                cropped.replaceSubrange(dst..<(dst + iw), with: full.data[src..<(src + iw)])
            }
        }
        return Resize.bilinear(Tensor(shape: [k, ih, iw], data: cropped),
                               height: originalSize.height, width: originalSize.width)
    }
}
