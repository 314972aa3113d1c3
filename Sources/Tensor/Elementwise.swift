import CKernels
import Foundation

/// Element-wise and normalisation kernels with PyTorch's semantics.
public enum Ops {
    /// In place: x += y (same shape).
    public static func add(_ x: inout Tensor, _ y: Tensor) {
        precondition(x.count == y.count, "add: \(x.shape) vs \(y.shape)")
        x.data.withUnsafeMutableBufferPointer { xp in
            y.data.withUnsafeBufferPointer { yp in for i in 0..<xp.count { xp[i] += yp[i] } }
        }
    }

    /// GELU, the erf form of nn.GELU() (erf to ~1e-7 absolute).
    public static func gelu(_ x: inout Tensor) {
        // The buffer is taken once, outside the parallel region: tasks touch disjoint ranges.
        x.data.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            Parallel.chunks(p.count, minimum: 65536) { r in asn_gelu_to(base + r.lowerBound, base + r.lowerBound, r.count) }
        }
    }

    /// GELU of x as a new tensor, in one pass (no copy of x first).
    public static func gelu(_ x: Tensor) -> Tensor {
        let n = x.count
        let y = [Float](unsafeUninitializedCapacity: n) { out, count in
            x.data.withUnsafeBufferPointer { src in
                if n > 0 {
                    let xp = src.baseAddress!, yp = out.baseAddress!
                    Parallel.chunks(n, minimum: 65536) { r in asn_gelu_to(xp + r.lowerBound, yp + r.lowerBound, r.count) }
                }
            }
            count = n
        }
        return Tensor(shape: x.shape, data: y)
    }

    public static func relu(_ x: inout Tensor) {
        x.data.withUnsafeMutableBufferPointer { p in for i in 0..<p.count where p[i] < 0 { p[i] = 0 } }
    }

    /// LayerNorm over the last dimension (nn.LayerNorm), in place.
    public static func layerNorm(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float) {
        let n = weight.count
        precondition(x.shape.last == n, "layerNorm: \(x.shape) vs \(n)")
        let rows = x.count / n
        x.data.withUnsafeMutableBufferPointer { p in
            weight.data.withUnsafeBufferPointer { w in
                bias.data.withUnsafeBufferPointer { b in
                    let base = p.baseAddress!, wp = w.baseAddress!, bp = b.baseAddress!
                    Parallel.chunks(rows, minimum: 64) { range in
                        asn_layernorm_rows(base + range.lowerBound * n, range.count, n, wp, bp, eps)
                    }
                }
            }
        }
    }

    /// SAM's LayerNorm2d on [C, H, W]: normalises over C at each position, in place.
    public static func layerNorm2d(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float) {
        let c = x.shape[0], hw = x.count / c
        x.data.withUnsafeMutableBufferPointer { p in
            var mean = [Float](repeating: 0, count: hw), varr = [Float](repeating: 0, count: hw)
            for ch in 0..<c { for i in 0..<hw { mean[i] += p[ch * hw + i] } }
            for i in 0..<hw { mean[i] /= Float(c) }
            for ch in 0..<c {
                for i in 0..<hw {
                    let d = p[ch * hw + i] - mean[i]
                    varr[i] += d * d
                }
            }
            for i in 0..<hw { varr[i] = 1 / (varr[i] / Float(c) + eps).squareRoot() }
            for ch in 0..<c {
                let w = weight.data[ch], b = bias.data[ch]
                for i in 0..<hw { p[ch * hw + i] = (p[ch * hw + i] - mean[i]) * varr[i] * w + b }
            }
        }
    }

    /// Softmax over each row of length n of a buffer, in place (max-subtracted).
    @inline(__always)
    public static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        asn_softmax_rows(p, rows, n)
    }

    /// Softmax over the last dimension.
    public static func softmax(_ x: inout Tensor) {
        let n = x.shape.last!
        x.data.withUnsafeMutableBufferPointer { softmaxRows($0.baseAddress!, rows: $0.count / n, n: n) }
    }
}
