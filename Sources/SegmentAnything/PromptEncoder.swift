import Foundation
import NN
import Tensor

// Port of segment-anything `modeling/prompt_encoder.py` (PromptEncoder,
// PositionEmbeddingRandom) and `LayerNorm2d` from `modeling/common.py`
// (facebookresearch/segment-anything, commit dca509fe793f601edb92606367a655c15ac00fdf).
// One prompt set at a time (the reference's batch size 1): sparse embeddings are [T, D],
// dense embeddings [D, h, w].

/// `PositionEmbeddingRandom`: Fourier features of 2D coordinates with a fixed Gaussian matrix.
public struct PositionEmbeddingRandom: Sendable {
    /// positional_encoding_gaussian_matrix [2, F]; the embedding has 2F channels (sin, then cos).
    public let gaussian: Tensor

    public init(gaussian: Tensor) {
        precondition(gaussian.rank == 2 && gaussian.shape[0] == 2, "PE matrix must be [2, F], not \(gaussian.shape)")
        self.gaussian = gaussian
    }

    public var features: Int { gaussian.shape[1] }

    /// _pe_encoding: coords[N, 2] as (x, y) in [0, 1] -> [N, 2F].
    public func encode(normalized coords: Tensor) -> Tensor {
        let n = coords.shape[0], f = features
        let twoPi = Float(2 * Double.pi)
        var out = [Float](repeating: 0, count: n * 2 * f)
        for p in 0..<n {
            let x = 2 * coords.data[2 * p] - 1, y = 2 * coords.data[2 * p + 1] - 1
            for j in 0..<f {
                let a = twoPi * (x * gaussian.data[j] + y * gaussian.data[f + j])
                out[p * 2 * f + j] = sinf(a)
                out[p * 2 * f + f + j] = cosf(a)
            }
        }
        return Tensor(shape: [n, 2 * f], data: out)
    }

    /// forward(size): the encoding of the centres of an h x w grid, [2F, h, w].
    public func dense(height h: Int, width w: Int) -> Tensor {
        var coords = [Float](repeating: 0, count: h * w * 2)
        for y in 0..<h {
            for x in 0..<w {
                // cumsum(ones) - 0.5 = index + 0.5, then divided by the size.
                coords[(y * w + x) * 2] = (Float(x + 1) - 0.5) / Float(w)
                coords[(y * w + x) * 2 + 1] = (Float(y + 1) - 0.5) / Float(h)
            }
        }
        // [h*w, 2F] -> [2F, h*w] -> [2F, h, w]
        return encode(normalized: Tensor(shape: [h * w, 2], data: coords)).permuted([1, 0])
            .reshaped([2 * features, h, w])
    }

    /// forward_with_coords: coords[N, 2] as (x, y) pixels of an image of imageSize (H, W),
    /// x divided by W and y by H -> [N, 2F].
    public func encode(coords: Tensor, imageSize: (height: Int, width: Int)) -> Tensor {
        var c = coords
        for p in 0..<(c.count / 2) {
            c.data[2 * p] /= Float(imageSize.width)
            c.data[2 * p + 1] /= Float(imageSize.height)
        }
        return encode(normalized: c)
    }
}

/// SAM's prompt encoder: points, a box and a low-resolution mask -> sparse tokens [T, D] and a
/// dense embedding [D, h, w] for the mask decoder.
public struct PromptEncoder: Sendable {
    public let embedDim: Int
    /// The encoder's (padded, square) input size, (H, W); point coordinates are in this frame.
    public let inputImageSize: (height: Int, width: Int)
    /// The image embedding's grid, (h, w).
    public let imageEmbeddingSize: (height: Int, width: Int)
    public let pe: PositionEmbeddingRandom
    /// point_embeddings: 0 negative point, 1 positive point, 2 box top-left, 3 box bottom-right.
    let pointEmbeddings: [Tensor]
    let notAPoint: Tensor
    let noMask: Tensor
    let down0W: Tensor, down0B: Tensor, down1W: Tensor, down1B: Tensor
    let down3W: Tensor, down3B: Tensor, down4W: Tensor, down4B: Tensor
    let down6W: Tensor, down6B: Tensor

    static let layerNorm2dEps: Float = 1e-6

    /// The mask input's size, 4x the embedding grid: (4h, 4w).
    public var maskInputSize: (height: Int, width: Int) { (4 * imageEmbeddingSize.height, 4 * imageEmbeddingSize.width) }

    /// Loads `prompt_encoder.*` strictly.
    public init(config c: SAMConfig, weights store: ParameterStore, prefix: String = "prompt_encoder") throws {
        let s = store.scoped(prefix)
        let d = c.outChannels, mc = c.maskInChannels
        embedDim = d
        inputImageSize = (c.imageSize, c.imageSize)
        imageEmbeddingSize = (c.gridSize, c.gridSize)
        pe = PositionEmbeddingRandom(gaussian: try s.take("pe_layer.positional_encoding_gaussian_matrix", shape: [2, d / 2]))
        pointEmbeddings = try (0..<4).map { try s.take("point_embeddings.\($0).weight", shape: [1, d]) }
        notAPoint = try s.take("not_a_point_embed.weight", shape: [1, d])
        noMask = try s.take("no_mask_embed.weight", shape: [1, d])
        let m = s.scoped("mask_downscaling")
        down0W = try m.take("0.weight", shape: [mc / 4, 1, 2, 2]); down0B = try m.take("0.bias", shape: [mc / 4])
        down1W = try m.take("1.weight", shape: [mc / 4]); down1B = try m.take("1.bias", shape: [mc / 4])
        down3W = try m.take("3.weight", shape: [mc, mc / 4, 2, 2]); down3B = try m.take("3.bias", shape: [mc])
        down4W = try m.take("4.weight", shape: [mc]); down4B = try m.take("4.bias", shape: [mc])
        down6W = try m.take("6.weight", shape: [d, mc, 1, 1]); down6B = try m.take("6.bias", shape: [d])
    }

    /// get_dense_pe: the PE of every embedding cell, [D, h, w].
    public func densePositionalEncoding() -> Tensor {
        pe.dense(height: imageEmbeddingSize.height, width: imageEmbeddingSize.width)
    }

    /// _embed_points: points[N, 2] (x, y pixels in the input frame), labels (1 foreground,
    /// 0 background, -1 not a point) -> [N (+1 with pad), D]. `pad` appends a not-a-point.
    /// Other label values keep the bare PE, as in the reference.
    func embedPoints(_ points: Tensor, labels: [Int], pad: Bool) -> Tensor {
        let n = points.shape[0], d = embedDim
        precondition(points.shape == [n, 2] && labels.count == n, "points \(points.shape) with \(labels.count) labels")
        // Shift to the centre of the pixel; the padding point (0, 0) is not shifted.
        var coords = points.data.map { $0 + 0.5 }
        var labels = labels
        if pad {
            coords += [0, 0]
            labels.append(-1)
        }
        var e = pe.encode(coords: Tensor(shape: [labels.count, 2], data: coords), imageSize: inputImageSize)
        for (p, label) in labels.enumerated() {
            let add: Tensor
            switch label {
            case -1:
                for j in 0..<d { e.data[p * d + j] = 0 }
                add = notAPoint
            case 0: add = pointEmbeddings[0]
            case 1: add = pointEmbeddings[1]
            default: continue
            }
            for j in 0..<d { e.data[p * d + j] += add.data[j] }
        }
        return e
    }

    /// _embed_boxes: box[4] = (x0, y0, x1, y1) pixels -> two corner tokens [2, D].
    func embedBox(_ box: Tensor) -> Tensor {
        precondition(box.count == 4, "a box is 4 numbers, not \(box.shape)")
        // [4] -> [2 corners, 2], shifted to pixel centres
        var e = pe.encode(coords: Tensor(shape: [2, 2], data: box.data.map { $0 + 0.5 }), imageSize: inputImageSize)
        let d = embedDim
        for j in 0..<d {
            e.data[j] += pointEmbeddings[2].data[j]
            e.data[d + j] += pointEmbeddings[3].data[j]
        }
        return e
    }

    /// _embed_masks: mask[1, 4h, 4w] (logits) -> [D, h, w] through conv 2x2/2 -> LayerNorm2d ->
    /// GELU -> conv 2x2/2 -> LayerNorm2d -> GELU -> conv 1x1.
    public func embedMask(_ mask: Tensor) -> Tensor {
        let (mh, mw) = maskInputSize
        precondition(mask.count == mh * mw, "mask input must be [1, \(mh), \(mw)], not \(mask.shape)")
        var x = Conv.conv2d(mask.reshaped([1, mh, mw]), weight: down0W, bias: down0B, stride: 2)
        Ops.layerNorm2d(&x, weight: down1W, bias: down1B, eps: Self.layerNorm2dEps)
        Ops.gelu(&x)
        x = Conv.conv2d(x, weight: down3W, bias: down3B, stride: 2)
        Ops.layerNorm2d(&x, weight: down4W, bias: down4B, eps: Self.layerNorm2dEps)
        Ops.gelu(&x)
        return Conv.conv2d(x, weight: down6W, bias: down6B)
    }

    /// forward: points[N, 2] with labels, a box[4] and a mask[1, 4h, 4w], each optional ->
    /// (sparse[T, D], dense[D, h, w]). Points come first, then the box's two corners; a
    /// not-a-point token is appended to points when there is no box. With no mask the dense
    /// embedding is no_mask_embed at every cell.
    public func callAsFunction(points: Tensor? = nil, labels: [Int]? = nil, box: Tensor? = nil,
                               mask: Tensor? = nil) -> (sparse: Tensor, dense: Tensor) {
        let d = embedDim
        var sparse: [Float] = []
        if let points {
            sparse += embedPoints(points.reshaped([-1, 2]), labels: labels ?? [], pad: box == nil).data
        }
        if let box { sparse += embedBox(box).data }
        let dense: Tensor
        if let mask {
            dense = embedMask(mask)
        } else {
            let (h, w) = imageEmbeddingSize
            var out = [Float](repeating: 0, count: d * h * w)
            for c in 0..<d { for i in 0..<(h * w) { out[c * h * w + i] = noMask.data[c] } }
            dense = Tensor(shape: [d, h, w], data: out)
        }
        return (Tensor(shape: [sparse.count / d, d], data: sparse), dense)
    }
}
