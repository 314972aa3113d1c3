import Foundation
import Testing

@testable import NN
@testable import Tensor

/// The UNet baseline's new primitive: 2x2 max pooling, value and gradient.
@Suite struct PoolingGradTests {
    @Test func maxPoolForwardByHand() {
        // One channel 2x4 -> 1x2; a second channel with a tie (first maximum wins).
        let x = Tensor(shape: [2, 2, 4], data: [1, 5, -1, 0,
                                                3, 2, -2, -3,
                                                7, 7, 0, 1,
                                                7, 0, 1, 1])
        let v = Variable(x, requiresGrad: true)
        let y = v.maxPool2x2()
        #expect(y.shape == [2, 1, 2])
        #expect(y.value.data == [5, 0, 7, 1])
        y.backward(seed: Tensor(shape: [2, 1, 2], data: [10, 20, 30, 40]))
        // Each window's gradient lands on its (first) maximum only.
        #expect(v.grad!.data == [0, 10, 0, 20,
                                 0, 0, 0, 0,
                                 30, 0, 0, 40,
                                 0, 0, 0, 0])
    }

    @Test func maxPoolMatchesFiniteDifferences() {
        // Distinct values 0.02 apart in a seeded random order: every window's maximum leads by
        // more than the finite-difference step, so the max is differentiable where we probe.
        var r = GradCheck.RNG(s: 21)
        var values = (0..<72).map { Float($0) * 0.02 - 0.7 }
        for i in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(i, Int((r.next() + 1) / 2 * Float(i + 1)) % (i + 1))
        }
        let x = Tensor(shape: [3, 6, 4], data: values)
        let e = GradCheck.check([x], samples: 72) { $0[0].maxPool2x2() }
        #expect(e < 2e-2, "maxPool2x2 \(e)")
        // Composed as in the UNet: pooled features through a convolution, concatenated along
        // the channels with the pooled input (a skip connection).
        let w = GradCheck.random([2, 3, 3, 3], &r, scale: 0.5), b = GradCheck.random([2], &r)
        let e2 = GradCheck.check([x, w, b], samples: 30) {
            let pooled = $0[0].maxPool2x2()
            return Variable.concatRows([Variable.conv2d(pooled, $0[1], $0[2], padding: 1), pooled])
        }
        #expect(e2 < 2e-2, "pool, conv and channel concatenation \(e2)")
    }
}
