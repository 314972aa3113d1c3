import Foundation
import NN
import Tensor

/// The prompt-free heads of the paper: image embedding [C_in, g, g] -> class logits
/// [classes, 4g, 4g]. Parameters are named like PyTorch state-dict keys for saving.
public protocol SegmentationHead: AnyObject {
    var kind: HeadKind { get }
    var classes: Int { get }
    /// Named parameters, in a fixed order.
    var parameters: [(String, Variable)] { get }
    func forward(_ embedding: Variable) -> Variable
}

public enum HeadKind: String, Codable, CaseIterable, Sendable {
    case autosam
    case cnn
    case linear
    /// Ours, not the paper's: the CNN head with a context path over the embedding grid
    /// (`ContextHead`).
    case context
}

/// Seeded parameter initialisation: He (Kaiming) uniform for the ReLU/GELU networks, biases
/// zero. PyTorch's default (Kaiming uniform with a = sqrt(5), uniform biases) divides each
/// layer's activation energy by about 6 after a ReLU, so the CNN head's logits start about
/// 500 times smaller than its biases and training spends its first epochs on predicting
/// background only (measured on the phantoms; docs/ARCHITECTURE.md).
struct Initializer {
    var state: UInt64
    mutating func uniform() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(state >> 11) / Double(1 << 53)) * 2 - 1
    }
    /// A convolution weight [Cout, Cin, k, k]: uniform with variance 2 / fan-in.
    mutating func conv(_ cout: Int, _ cin: Int, _ k: Int) -> Variable {
        let bound = (6 / Float(cin * k * k)).squareRoot()
        return Variable(Tensor(shape: [cout, cin, k, k], data: (0..<(cout * cin * k * k)).map { _ in uniform() * bound }), requiresGrad: true)
    }
    /// A transposed convolution weight [Cin, Cout, k, k] with stride k (no overlap): each output
    /// pixel sums Cin inputs, so the fan-in is Cin.
    mutating func convT(_ cin: Int, _ cout: Int, _ k: Int) -> Variable {
        let bound = (6 / Float(cin)).squareRoot()
        return Variable(Tensor(shape: [cin, cout, k, k], data: (0..<(cout * cin * k * k)).map { _ in uniform() * bound }), requiresGrad: true)
    }
    func ones(_ n: Int) -> Variable { Variable(Tensor(repeating: 1, shape: [n]), requiresGrad: true) }
    func zeros(_ n: Int) -> Variable { Variable(Tensor(zeros: [n]), requiresGrad: true) }
}

/// Named convolution parameters in order, drawn by one initialiser (weights He, biases zero).
struct ParameterList {
    var initializer: Initializer
    var list: [(String, Variable)] = []
    init(_ initializer: Initializer) { self.initializer = initializer }

    /// A k x k convolution `name` (Cout x Cin x k x k) and its bias.
    mutating func conv(_ name: String, _ cout: Int, _ cin: Int, _ k: Int) {
        list.append((name + ".weight", initializer.conv(cout, cin, k)))
        list.append((name + ".bias", initializer.zeros(cout)))
    }
    /// A 2 x 2 transposed convolution of stride 2 `name` (Cin x Cout x 2 x 2) and its bias.
    mutating func convT(_ name: String, _ cin: Int, _ cout: Int) {
        list.append((name + ".weight", initializer.convT(cin, cout, 2)))
        list.append((name + ".bias", initializer.zeros(cout)))
    }
}

/// Encoder + CNN: two 1x1 convolutions, two stages of [3x3 conv, ReLU, 3x3 conv, ReLU,
/// 2x2 transposed conv stride 2] halving the width, then a 3x3 and a 1x1 convolution.
public final class CNNHead: SegmentationHead {
    public let kind = HeadKind.cnn
    public let classes: Int
    public let parameters: [(String, Variable)]

    public init(inChannels c: Int, classes: Int, seed: UInt64 = 0) {
        self.classes = classes
        var p = ParameterList(Initializer(state: seed &+ 0x5EED))
        let c1 = c / 2, c2 = c / 4
        p.conv("reduce.0", c, c, 1)
        p.conv("reduce.1", c, c, 1)
        p.conv("stage1.conv1", c1, c, 3)
        p.conv("stage1.conv2", c1, c1, 3)
        p.convT("stage1.up", c1, c1)
        Self.addTail(&p, from: c1, width: c2, classes: classes)
        parameters = p.list
    }

    /// The head's second stage and output convolutions (shared with `ContextHead`).
    static func addTail(_ p: inout ParameterList, from cin: Int, width c2: Int, classes: Int) {
        p.conv("stage2.conv1", c2, cin, 3)
        p.conv("stage2.conv2", c2, c2, 3)
        p.convT("stage2.up", c2, c2)
        p.conv("out.conv3", c2, c2, 3)
        p.conv("out.conv1", classes, c2, 1)
    }

    /// Stage 2 (two 3x3 convolutions with ReLU, 2x2 transposed convolution), then the 3x3 and
    /// 1x1 output convolutions.
    static func tail(_ x: Variable, _ p: [String: Variable]) -> Variable {
        func conv(_ n: String, _ v: Variable, pad: Int) -> Variable { Variable.conv2d(v, p[n + ".weight"]!, p[n + ".bias"]!, padding: pad) }
        var y = conv("stage2.conv1", x, pad: 1).relu()
        y = conv("stage2.conv2", y, pad: 1).relu()
        y = Variable.convTranspose2d(y, p["stage2.up.weight"]!, p["stage2.up.bias"]!)
        y = conv("out.conv3", y, pad: 1).relu()
        return conv("out.conv1", y, pad: 0)
    }

    public func forward(_ x: Variable) -> Variable {
        let p = Dictionary(uniqueKeysWithValues: parameters)
        func conv(_ n: String, _ v: Variable, pad: Int) -> Variable { Variable.conv2d(v, p[n + ".weight"]!, p[n + ".bias"]!, padding: pad) }
        var y = conv("reduce.0", x, pad: 0).relu()
        y = conv("reduce.1", y, pad: 0).relu()
        y = conv("stage1.conv1", y, pad: 1).relu()
        y = conv("stage1.conv2", y, pad: 1).relu()
        y = Variable.convTranspose2d(y, p["stage1.up.weight"]!, p["stage1.up.bias"]!)
        return Self.tail(y, p)
    }
}

/// Encoder + Linear: SAM's output upscaling (2x2 transposed convs 256 -> 64 -> 32 with
/// LayerNorm2d and GELU), then 1x1 conv, ReLU, 1x1 conv to the classes.
public final class LinearHead: SegmentationHead {
    public let kind = HeadKind.linear
    public let classes: Int
    public let parameters: [(String, Variable)]

    public init(inChannels c: Int, classes: Int, seed: UInt64 = 0) {
        self.classes = classes
        var r = Initializer(state: seed &+ 0x11AEA)
        let c1 = c / 4, c2 = c / 8
        parameters = [
            ("up1.weight", r.convT(c, c1, 2)), ("up1.bias", r.zeros(c1)),
            ("norm1.weight", r.ones(c1)), ("norm1.bias", r.zeros(c1)),
            ("up2.weight", r.convT(c1, c2, 2)), ("up2.bias", r.zeros(c2)),
            ("fc1.weight", r.conv(c2, c2, 1)), ("fc1.bias", r.zeros(c2)),
            ("fc2.weight", r.conv(classes, c2, 1)), ("fc2.bias", r.zeros(classes)),
        ]
    }

    public func forward(_ x: Variable) -> Variable {
        let p = Dictionary(uniqueKeysWithValues: parameters)
        var y = Variable.convTranspose2d(x, p["up1.weight"]!, p["up1.bias"]!)
        y = y.layerNorm2d(p["norm1.weight"]!, p["norm1.bias"]!, eps: 1e-6).gelu()
        y = Variable.convTranspose2d(y, p["up2.weight"]!, p["up2.bias"]!).gelu()
        y = Variable.conv2d(y, p["fc1.weight"]!, p["fc1.bias"]!).relu()
        return Variable.conv2d(y, p["fc2.weight"]!, p["fc2.bias"]!)
    }
}

/// Ours, not the paper's (docs/ARCHITECTURE.md): the CNN head with a context path. The paper's
/// CNN head sees about 6 tokens around a pixel, so with an encoder whose tokens carry no
/// context (a random one) it cannot tell a large LV blood pool from the RV's. Here the reduced
/// embedding first goes through a small UNet over the embedding grid (levels g, g/2, g/4, g/8,
/// each two 3x3 convolutions with ReLU, 2x2 max pooling down, 2x2 transposed convolutions up,
/// skips concatenated), whose deepest level covers the whole field; then the CNN head's two
/// upsampling stages and output convolutions. The grid must be divisible by 8.
public final class ContextHead: SegmentationHead {
    public let kind = HeadKind.context
    public let classes: Int
    public let parameters: [(String, Variable)]
    /// The parameters by name (built once; the forward pass looks them up).
    let p: [String: Variable]
    static let levels = 4

    public init(inChannels c: Int, classes: Int, seed: UInt64 = 0) {
        self.classes = classes
        var p = ParameterList(Initializer(state: seed &+ 0xC0DE))
        let w = c / 2, c2 = c / 4
        p.conv("reduce.0", c, c, 1)
        p.conv("reduce.1", c, c, 1)
        for l in 0..<Self.levels {
            p.conv("down\(l).conv1", w, l == 0 ? c : w, 3)
            p.conv("down\(l).conv2", w, w, 3)
        }
        for l in stride(from: Self.levels - 2, through: 0, by: -1) {
            p.convT("up\(l).up", w, w)
            p.conv("up\(l).conv1", w, 2 * w, 3)
            p.conv("up\(l).conv2", w, w, 3)
        }
        p.convT("stage1.up", w, w)
        CNNHead.addTail(&p, from: w, width: c2, classes: classes)
        parameters = p.list
        self.p = Dictionary(uniqueKeysWithValues: p.list)
    }

    public func forward(_ x: Variable) -> Variable {
        let p = self.p
        func conv(_ n: String, _ v: Variable, pad: Int) -> Variable { Variable.conv2d(v, p[n + ".weight"]!, p[n + ".bias"]!, padding: pad) }
        func block(_ n: String, _ v: Variable) -> Variable { conv(n + ".conv2", conv(n + ".conv1", v, pad: 1).relu(), pad: 1).relu() }
        func up(_ n: String, _ v: Variable) -> Variable { Variable.convTranspose2d(v, p[n + ".weight"]!, p[n + ".bias"]!) }
        var y = conv("reduce.0", x, pad: 0).relu()
        y = conv("reduce.1", y, pad: 0).relu()
        var skips: [Variable] = []
        for l in 0..<Self.levels {
            if l > 0 { y = y.maxPool2x2() }
            y = block("down\(l)", y)
            skips.append(y)
        }
        for l in stride(from: Self.levels - 2, through: 0, by: -1) {
            y = block("up\(l)", Variable.concatRows([skips[l], up("up\(l).up", y)]))
        }
        return CNNHead.tail(up("stage1.up", y), p)
    }
}

public enum Heads {
    /// A fresh CNN or linear head. The AutoSAM head starts from SAM's mask decoder instead
    /// (`AutoSAMHead(sam:config:classes:seed:)`), so asking for one here is an error.
    public static func make(_ kind: HeadKind, inChannels: Int, classes: Int, seed: UInt64) throws -> SegmentationHead {
        switch kind {
        case .cnn: return CNNHead(inChannels: inChannels, classes: classes, seed: seed)
        case .linear: return LinearHead(inChannels: inChannels, classes: classes, seed: seed)
        case .context: return ContextHead(inChannels: inChannels, classes: classes, seed: seed)
        case .autosam:
            throw CheckpointError.notACheckpoint(path: "head", reason: "the AutoSAM head is built from a SAM checkpoint's mask decoder")
        }
    }
}
