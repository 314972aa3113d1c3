import Foundation
import Tensor

extension Variable {
    /// Mean cross entropy of logits[N, C] (N pixels) against integer labels.
    public static func crossEntropy(_ logits: Variable, labels: [Int]) -> Variable {
        let c = logits.shape.last!, n = logits.value.count / c
        precondition(labels.count == n)
        var p = logits.value
        p.data.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: n, n: c) }
        var loss: Float = 0
        for i in 0..<n { loss -= logf(max(p.data[i * c + labels[i]], 1e-12)) }
        let probs = p
        return Variable(Tensor(shape: [1], data: [loss / Float(n)]), parents: [logits]) { g in
            var d = probs
            for i in 0..<n { d.data[i * c + labels[i]] -= 1 }
            let s = g.data[0] / Float(n)
            for i in 0..<d.count { d.data[i] *= s }
            return [d]
        }
    }

    /// Soft Dice loss on probabilities[N, C] (softmax already applied), batch Dice per class
    /// over all N pixels, classes `1..<C` (background excluded): 1 - mean_c (2 I_c + s) / (P_c + T_c + s).
    public static func softDice(_ probs: Variable, labels: [Int], smooth: Float = 1e-5) -> Variable {
        let c = probs.shape.last!, n = probs.value.count / c
        let pv = probs.value
        var inter = [Float](repeating: 0, count: c), psum = [Float](repeating: 0, count: c), tsum = [Float](repeating: 0, count: c)
        for i in 0..<n {
            for k in 1..<c {
                let p = pv.data[i * c + k]
                psum[k] += p
                if labels[i] == k {
                    inter[k] += p
                    tsum[k] += 1
                }
            }
        }
        var dice: Float = 0
        for k in 1..<c { dice += (2 * inter[k] + smooth) / (psum[k] + tsum[k] + smooth) }
        let classes = Float(c - 1)
        return Variable(Tensor(shape: [1], data: [1 - dice / classes]), parents: [probs]) { g in
            var d = Tensor(zeros: pv.shape)
            for k in 1..<c {
                let den = psum[k] + tsum[k] + smooth, num = 2 * inter[k] + smooth
                for i in 0..<n {
                    let t: Float = labels[i] == k ? 1 : 0
                    // d/dp of num/den = (2 t den - num) / den^2
                    d.data[i * c + k] = -g.data[0] / classes * (2 * t * den - num) / (den * den)
                }
            }
            return [d]
        }
    }
}
