import Foundation
import Testing

@testable import NN
@testable import Tensor

/// The one gradient checker: every primitive's analytic gradient against central finite
/// differences of a random projection of its output, on random inputs.
enum GradCheck {
    struct RNG {
        var s: UInt64
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Double(s >> 11) / Double(1 << 53)) * 2 - 1
        }
    }

    static func random(_ shape: [Int], _ r: inout RNG, scale: Float = 1) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in r.next() * scale })
    }

    /// Checks d(sum(f(inputs) * R))/d(input) for every input, on up to `samples` elements each.
    /// Returns the worst relative error |analytic - numeric| / max(1, |numeric|).
    static func check(_ inputs: [Tensor], samples: Int = 12, eps: Float = 1e-3, seed: UInt64 = 1,
                      _ f: ([Variable]) -> Variable) -> Float {
        var r = RNG(s: seed)
        let vars = inputs.map { Variable($0, requiresGrad: true) }
        let out = f(vars)
        let proj = random(out.shape, &r)
        func loss(_ xs: [Tensor]) -> Double {
            let y = Autograd.withoutGrad { f(xs.map { Variable($0) }) }
            return zip(y.value.data, proj.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        out.backward(seed: proj)
        var worst: Float = 0
        for (k, v) in vars.enumerated() {
            let g = v.grad ?? Tensor(zeros: v.shape)
            for s in 0..<min(samples, v.value.count) {
                let i = (s * 7919 + k * 31) % v.value.count
                var plus = inputs, minus = inputs
                plus[k].data[i] += eps
                minus[k].data[i] -= eps
                let numeric = Float((loss(plus) - loss(minus)) / Double(2 * eps))
                worst = max(worst, abs(g.data[i] - numeric) / max(1, abs(numeric)))
            }
        }
        return worst
    }
}

@Suite struct GradientCheckTests {
    let tol: Float = 2e-2

    @Test func linear() {
        var r = GradCheck.RNG(s: 3)
        let e = GradCheck.check([GradCheck.random([5, 4], &r), GradCheck.random([3, 4], &r), GradCheck.random([3], &r)]) {
            Variable.linear($0[0], $0[1], $0[2])
        }
        #expect(e < tol, "linear \(e)")
    }

    @Test func elementwise() {
        var r = GradCheck.RNG(s: 4)
        let a = GradCheck.random([3, 5], &r), b = GradCheck.random([3, 5], &r)
        #expect(GradCheck.check([a, b]) { $0[0] + $0[1] } < tol)
        #expect(GradCheck.check([a, b]) { $0[0] * $0[1] } < tol)
        #expect(GradCheck.check([a]) { $0[0].relu() } < tol)
        #expect(GradCheck.check([a]) { $0[0].gelu() } < tol)
        #expect(GradCheck.check([a]) { $0[0].softmax() } < tol)
        #expect(GradCheck.check([a]) { $0[0].sum() } < tol)
        #expect(GradCheck.check([a]) { $0[0].reshaped([5, 3]).permuted([1, 0]) } < tol)
    }

    @Test func layerNorm() {
        var r = GradCheck.RNG(s: 5)
        let e = GradCheck.check([GradCheck.random([4, 6], &r), GradCheck.random([6], &r), GradCheck.random([6], &r)]) {
            $0[0].layerNorm($0[1], $0[2], eps: 1e-5)
        }
        #expect(e < tol, "layerNorm \(e)")
    }

    @Test func conv2d() {
        var r = GradCheck.RNG(s: 6)
        let x = GradCheck.random([2, 5, 6], &r), w = GradCheck.random([3, 2, 3, 3], &r), b = GradCheck.random([3], &r)
        #expect(GradCheck.check([x, w, b]) { Variable.conv2d($0[0], $0[1], $0[2], padding: 1) } < tol)
        #expect(GradCheck.check([x, w, b]) { Variable.conv2d($0[0], $0[1], $0[2], stride: 2) } < tol)
    }

    @Test func losses() {
        var r = GradCheck.RNG(s: 7)
        let logits = GradCheck.random([10, 4], &r, scale: 2)
        let labels = [0, 1, 2, 3, 3, 2, 1, 0, 1, 3]
        #expect(GradCheck.check([logits]) { Variable.crossEntropy($0[0], labels: labels) } < tol)
        #expect(GradCheck.check([logits]) { Variable.softDice($0[0].softmax(), labels: labels) } < tol)
    }

    @Test func forwardValuesAndNoGrad() {
        // Forward against hand-computed values.
        let x = Variable(Tensor(shape: [1, 2], data: [1, 2]))
        let w = Variable(Tensor(shape: [2, 2], data: [1, 0, 1, 1]), requiresGrad: true)
        let y = Variable.linear(x, w, nil)
        #expect(y.value.data == [1, 3])
        let ce = Variable.crossEntropy(Variable(Tensor(shape: [1, 2], data: [0, 0])), labels: [1])
        #expect(abs(ce.value.data[0] - logf(2)) < 1e-6)
        // A perfect prediction has Dice loss ~0.
        let dice = Variable.softDice(Variable(Tensor(shape: [2, 2], data: [1, 0, 0, 1])), labels: [0, 1])
        #expect(abs(dice.value.data[0]) < 1e-5)
        // No tape in no-grad mode.
        let z = Autograd.withoutGrad { Variable.linear(x, w, nil) }
        #expect(!z.requiresGrad)
        #expect(y.requiresGrad)
    }
}

@Suite struct MoreGradientChecks {
    @Test func transposedConvolutionAndLayerNorm2d() {
        var r = GradCheck.RNG(s: 9)
        let x = GradCheck.random([3, 4, 5], &r), w = GradCheck.random([3, 2, 2, 2], &r), b = GradCheck.random([2], &r)
        #expect(GradCheck.check([x, w, b]) { Variable.convTranspose2d($0[0], $0[1], $0[2]) } < 2e-2)
        let g = GradCheck.random([3], &r), bb = GradCheck.random([3], &r)
        #expect(GradCheck.check([x, g, bb]) { $0[0].layerNorm2d($0[1], $0[2], eps: 1e-6) } < 2e-2)
    }

    @Test func adamMinimisesAQuadratic() {
        // f(p) = sum((p - 3)^2): Adam drives p to 3.
        let p = Variable(Tensor(shape: [4], data: [0, 1, -2, 10]), requiresGrad: true)
        let target = Variable(Tensor(repeating: -3, shape: [4]))
        let opt = Adam([p], learningRate: 0.1)
        for _ in 0..<500 {
            let d = p + target
            (d * d).sum().backward()
            opt.update()
        }
        #expect(p.value.data.allSatisfy { abs($0 - 3) < 1e-2 }, "\(p.value.data)")
    }

    @Test func plateauHalvesTheRate() {
        let opt = Adam([Variable(Tensor(zeros: [1]), requiresGrad: true)], learningRate: 1)
        var s = PlateauSchedule(factor: 0.5, patience: 2)
        for v: Float in [5, 4, 4, 4, 4] { _ = s.step(v, optimizer: opt) }
        #expect(opt.learningRate == 0.5)
    }
}

@Suite struct MatrixGradientChecks {
    @Test func matmulRowsConcatScale() {
        var r = GradCheck.RNG(s: 11)
        let a = GradCheck.random([3, 4], &r), b = GradCheck.random([4, 5], &r), bt = GradCheck.random([5, 4], &r)
        #expect(GradCheck.check([a, b]) { Variable.matmul($0[0], $0[1]) } < 2e-2)
        #expect(GradCheck.check([a, bt]) { Variable.matmul($0[0], $0[1], transposeB: true) } < 2e-2)
        #expect(GradCheck.check([b]) { $0[0].rows(1..<3) } < 2e-2)
        #expect(GradCheck.check([a, a]) { Variable.concatRows([$0[0], $0[1].rows(0..<2)]) } < 2e-2)
        #expect(GradCheck.check([a]) { $0[0].scaled(by: -2.5) } < 2e-2)
        // Forward values by hand.
        let m = Variable.matmul(Variable(Tensor(shape: [1, 2], data: [1, 2])), Variable(Tensor(shape: [2, 1], data: [3, 4])))
        #expect(m.value.data == [11])
    }
}

@Suite struct ParallelTests {
    /// A parallel kernel called from inside a parallel region (a training worker running GELU
    /// on a large tensor) runs serially instead of waiting forever for the region's lock.
    @Test(.timeLimit(.minutes(1))) func nestedRegionsDoNotDeadlock() {
        var sums = [Float](repeating: 0, count: 4)
        sums.withUnsafeMutableBufferPointer { out in
            let o = out.baseAddress!
            Parallel.forEach(4) { i in
                var t = Tensor(repeating: Float(i), shape: [300_000])
                Ops.gelu(&t)  // chunks itself over the cores when called alone
                o[i] = t.data[0]
            }
        }
        #expect(sums[0] == 0 && sums[3] > 2.99)
    }
}
