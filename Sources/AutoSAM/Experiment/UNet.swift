import CardiacImaging
import Foundation
import NN
import Tensor

/// The paper's baseline: a small UNet trained from scratch on the windowed slices (no
/// encoder). Four levels (channels 16-32-64-128 by default), each two 3x3 convolutions with
/// ReLU; 2x2 max pooling down, 2x2 transposed convolutions up, skip connections concatenated
/// along the channels; a 1x1 convolution to the classes. Input [1, S, S] (S divisible by 8),
/// logits [classes, S, S].
///
/// It conforms to `SegmentationHead` so that it trains with the very same `Trainer.fit`
/// (loss, Adam, plateau schedule, early stopping) as the heads; its "embedding" is the image.
/// `HeadKind` has no UNet case, so `kind` reads `.cnn`; a UNet is never saved as a head model.
public final class UNet: SegmentationHead {
    public let kind = HeadKind.cnn
    public let classes: Int
    public let parameters: [(String, Variable)]
    let channels: [Int]
    let p: [String: Variable]

    public init(classes: Int, channels: [Int] = [16, 32, 64, 128], seed: UInt64 = 0) {
        precondition(channels.count >= 2, "a UNet needs at least two levels")
        self.classes = classes
        self.channels = channels
        var p = ParameterList(Initializer(state: seed &+ 0x0E7))
        var cin = 1
        for (l, c) in channels.enumerated() {
            p.conv("down\(l).conv1", c, cin, 3)
            p.conv("down\(l).conv2", c, c, 3)
            cin = c
        }
        for l in stride(from: channels.count - 2, through: 0, by: -1) {
            let c = channels[l], below = channels[l + 1]
            p.convT("up\(l).up", below, c)
            p.conv("up\(l).conv1", c, 2 * c, 3)
            p.conv("up\(l).conv2", c, c, 3)
        }
        p.conv("out", classes, channels[0], 1)
        parameters = p.list
        self.p = Dictionary(uniqueKeysWithValues: p.list)
    }

    func conv(_ n: String, _ x: Variable, pad: Int) -> Variable {
        Variable.conv2d(x, p[n + ".weight"]!, p[n + ".bias"]!, padding: pad)
    }

    func block(_ prefix: String, _ x: Variable) -> Variable {
        conv(prefix + ".conv2", conv(prefix + ".conv1", x, pad: 1).relu(), pad: 1).relu()
    }

    public func forward(_ image: Variable) -> Variable {
        var skips: [Variable] = []
        var x = image
        for l in channels.indices {
            if l > 0 { x = x.maxPool2x2() }
            x = block("down\(l)", x)
            skips.append(x)
        }
        for l in stride(from: channels.count - 2, through: 0, by: -1) {
            let up = Variable.convTranspose2d(x, p["up\(l).up.weight"]!, p["up\(l).up.bias"]!)
            x = block("up\(l)", Variable.concatRows([skips[l], up]))
        }
        return conv("out", x, pad: 0)
    }

    /// The UNet's input for a slice: the plan's field and intensity window (the same pixels
    /// the encoder sees, optionally an augmented view), sampled at `side`, scaled to -1...1.
    static func input(_ slice: Slice2D<Float>, plan: PreprocessingPlan, side: Int, view: AugmentedView? = nil) -> Tensor {
        var p = plan
        p.sliceSize = side
        return Tensor(shape: [1, side, side], data: p.window(slice, view: view).map { $0 / 127.5 - 1 })
    }

    /// Training samples (image, labels at `side`) of the ED and ES frames of the patients:
    /// the plain view of every slice, plus the plan's augmented views when `augment` is set
    /// (the same views, by the same seeds, as the heads' training embeddings; grouped by slice
    /// so that an epoch trains on one view of each slice, as for the heads).
    public static func samples(
        patients: [ACDCPatient], plan: PreprocessingPlan, side: Int, augment: Bool, maxClass: UInt8 = 3
    ) throws -> [TrainingSample] {
        var out: [TrainingSample] = []
        let views = augment ? (plan.augmentation?.views ?? 0) : 0
        for patient in patients {
            for frame in Set([patient.info.ed, patient.info.es]).sorted() {
                let (image, labels) = try patient.labelledFrame(frame)
                try labels.validate(maxClass: maxClass)
                let heart = views > 0 ? plan.referenceHeartCenter(labels) : .zero
                for k in 0..<image.shape.nz {
                    let slice = try image.slice(k), labelSlice = labels.slice(k)
                    // The key SliceData uses, so that the views match the heads' views.
                    let key = "\(patient.id) frame \(frame) slice \(k)"
                    for v in 0...views {
                        let view = v == 0 ? nil : plan.trainingView(v, key: key, centerMM: heart)
                        out.append(TrainingSample(
                            embedding: input(slice, plan: plan, side: side, view: view),
                            labels: plan.labels(labelSlice, side: side, view: view).map(Int.init),
                            source: v == 0 ? key : "\(key) view \(v)", slice: key))
                    }
                }
            }
        }
        return out
    }

    /// Labels of a 3D frame on exactly its grid: logits over the plan's field (and its
    /// test-time rotations, around the heart when the plan localises it), mapped back onto each
    /// slice and argmaxed by the plan (as `Segmenter` does for the heads).
    public func segment(_ frame: Volume, plan: PreprocessingPlan, side: Int) throws -> LabelMap {
        var labels = [UInt8](repeating: 0, count: frame.shape.voxelsPerFrame)
        let plane = frame.shape.nx * frame.shape.ny
        let slices = try (0..<frame.shape.nz).map { try frame.slice($0) }
        func logits(_ slice: Slice2D<Float>, _ view: AugmentedView?) -> Tensor {
            Autograd.withoutGrad { forward(Variable(Self.input(slice, plan: plan, side: side, view: view))) }.value
        }
        let center = plan.locateHeart(slices, coarseLogits: logits) ?? .zero
        for (k, slice) in slices.enumerated() {
            let n = plan.testTimeRotations
            let views = (0..<n).map { logits(slice, plan.inferenceView($0, of: n, centerMM: center)) }
            labels.replaceSubrange((k * plane)..<((k + 1) * plane),
                                   with: plan.labelsOnSlice(viewLogits: views, width: slice.width, height: slice.height, spacing: slice.spacing, centerMM: center))
        }
        return LabelMap(shape: frame.shape.spatial, geometry: frame.geometry, labels: labels)
    }
}
