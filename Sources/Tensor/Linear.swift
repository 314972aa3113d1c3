import CBF16
import Foundation

/// Numeric precision of the large matrix products.
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// Float32 throughout (the default; matches the reference to ~1e-6).
    case fp32
    /// bfloat16 inputs and weights, float32 accumulation and output (AMX / AVX512-BF16);
    /// an opt-in speed mode whose error is measured, not assumed (docs/PERFORMANCE.md).
    case bf16

    /// From AUTOSAM_PRECISION, fp32 by default.
    public static let fromEnvironment: Precision =
        ProcessInfo.processInfo.environment["AUTOSAM_PRECISION"].flatMap(Precision.init(rawValue:)) ?? .fp32
}

/// A linear layer y = x @ W^T + b whose weights are prepared once for the chosen precision.
/// In bf16 the float32 weights are not kept (the bf16 copy is the layer).
public final class Linear: @unchecked Sendable {
    /// [out, in]; empty when the layer runs in bf16.
    public let weight: Tensor
    public let bias: Tensor?
    let outFeatures: Int, inFeatures: Int
    public let precision: Precision
    private let bf16: OpaquePointer?

    public init(weight: Tensor, bias: Tensor?, precision: Precision = .fp32) {
        self.bias = bias
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        var handle: OpaquePointer?
        if precision == .bf16 {
            handle = weight.data.withUnsafeBufferPointer {
                asn_bf16_linear_create($0.baseAddress!, Int64(weight.shape[0]), Int64(weight.shape[1]))
            }
        }
        // Fall back to fp32 where oneDNN cannot build a bf16 matmul.
        self.bf16 = handle
        self.precision = handle == nil ? .fp32 : precision
        self.weight = handle == nil ? weight : Tensor(zeros: [0])
    }

    deinit { if let bf16 { asn_bf16_linear_free(bf16) } }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard let bf16 else { return GEMM.linear(x, weight: weight, bias: bias) }
        let inF = inFeatures, outF = outFeatures
        let rows = x.count / inF
        var shape = x.shape
        shape[shape.count - 1] = outF
        var out = Tensor(zeros: shape)
        let rc = x.data.withUnsafeBufferPointer { xp in
            out.data.withUnsafeMutableBufferPointer { op in
                asn_bf16_linear_run(bf16, xp.baseAddress!, Int64(rows), op.baseAddress!, 0)
            }
        }
        precondition(rc == 0, "oneDNN bf16 matmul failed (\(rc)) for \(rows)x\(outF)x\(inF)")
        if let bias { Ops.addBias(&out, bias) }
        return out
    }
}
