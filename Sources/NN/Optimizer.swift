import Foundation
import Tensor

/// Adam (Kingma & Ba), as torch.optim.Adam with default betas and no weight decay.
public final class Adam {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, eps: Float
    let parameters: [Variable]
    var m: [[Float]], v: [[Float]]
    var step = 0

    public init(_ parameters: [Variable], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        m = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        v = m
    }

    /// Everything an update depends on besides the parameters: saved with a training run's
    /// state so that a stopped run goes on exactly as if it had not stopped.
    public struct State: Sendable {
        public var learningRate: Float
        public var step: Int
        public var m: [[Float]], v: [[Float]]
    }

    public var state: State {
        get { State(learningRate: learningRate, step: step, m: m, v: v) }
        set {
            precondition(newValue.m.map(\.count) == m.map(\.count) && newValue.v.map(\.count) == v.map(\.count), "Adam state of other shapes")
            learningRate = newValue.learningRate
            step = newValue.step
            m = newValue.m
            v = newValue.v
        }
    }

    /// One update from the parameters' accumulated gradients, which it then clears.
    public func update() {
        step += 1
        let c1 = 1 - powf(beta1, Float(step)), c2 = 1 - powf(beta2, Float(step))
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            let (b1, b2, lr, e) = (beta1, beta2, learningRate, eps)
            // One pass over raw buffers (element-wise subscripts on class properties cost
            // exclusivity and bounds checks per element).
            g.data.withUnsafeBufferPointer { gp in
                m[i].withUnsafeMutableBufferPointer { mp in
                    v[i].withUnsafeMutableBufferPointer { vp in
                        p.value.data.withUnsafeMutableBufferPointer { wp in
                            for j in 0..<gp.count {
                                let gj = gp[j]
                                let mj = b1 * mp[j] + (1 - b1) * gj, vj = b2 * vp[j] + (1 - b2) * gj * gj
                                mp[j] = mj
                                vp[j] = vj
                                wp[j] -= lr * (mj / c1) / ((vj / c2).squareRoot() + e)
                            }
                        }
                    }
                }
            }
            p.grad = nil
        }
    }
}

/// ReduceLROnPlateau (mode min): multiplies the rate by `factor` after `patience` epochs
/// without improvement of more than `threshold` (relative).
public struct PlateauSchedule: Codable, Sendable {
    public var factor: Float = 0.5
    public var patience = 5
    public var threshold: Float = 1e-4
    public var minimumRate: Float = 1e-6
    var best = Float.infinity
    var bad = 0

    public init(factor: Float = 0.5, patience: Int = 5) {
        self.factor = factor
        self.patience = patience
    }

    /// Feeds one epoch's monitored value; returns the new rate.
    public mutating func step(_ value: Float, optimizer: Adam) -> Float {
        if value < best * (1 - threshold) {
            best = value
            bad = 0
        } else {
            bad += 1
            if bad > patience {
                optimizer.learningRate = max(minimumRate, optimizer.learningRate * factor)
                bad = 0
            }
        }
        return optimizer.learningRate
    }
}
