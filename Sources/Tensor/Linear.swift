import CBF16
import CKernels
import Foundation

/// Numeric precision of the large matrix products.
public enum Precision: String, Sendable, CaseIterable, Codable {
    /// Float32 throughout (the default; matches the reference to ~1e-6).
    case fp32
    /// bfloat16 inputs and weights, float32 accumulation and output (AMX / AVX512-BF16);
    /// an opt-in speed mode whose error is measured, not assumed (docs/PERFORMANCE.md).
    case bf16

    /// What a request gets on this CPU: bf16 only where oneDNN makes bfloat16 products (AVX-512
    /// CPUs), else fp32 with one line that says so, for the log, `autosam info` and provenance.
    public static func resolve(_ requested: Precision, bf16Available: Bool = CPUCapabilities.bf16Available) -> PrecisionChoice {
        guard requested == .bf16, !bf16Available else { return PrecisionChoice(requested: requested, effective: requested, note: nil) }
        return PrecisionChoice(
            requested: .bf16, effective: .fp32,
            note: "bf16 was asked for, but this CPU has no bfloat16 matrix products (oneDNN ISA \(CPUCapabilities.onednnISA); "
                + "CPU features: \(CPUCapabilities.features)): running in fp32")
    }
}

/// A requested precision, the one in effect, and the line that says why they differ.
public struct PrecisionChoice: Sendable, Equatable {
    public var requested: Precision
    public var effective: Precision
    /// Nil when the request is what runs.
    public var note: String?
}

/// What this machine's CPU offers the kernels: read at run time, never assumed (the project
/// runs on AVX2-only EPYCs as well as AVX-512 / AMX Xeons).
public enum CPUCapabilities {
    /// The vector and matrix extensions the CPU reports (CPUID), e.g. "... avx2 fma avx512f".
    public static var features: String { String(cString: asn_cpu_features()) }
    /// The variant of the element-wise kernels chosen at load (avx512f, avx2+fma, baseline).
    public static var kernelISA: String { String(cString: asn_kernels_isa()) }
    /// The instruction set oneDNN dispatches its products to (capped by ONEDNN_MAX_CPU_ISA).
    public static var onednnISA: String { String(cString: asn_bf16_isa()) }
    /// Whether oneDNN makes bfloat16 matrix products here (AVX-512 and above).
    public static let bf16Available = asn_bf16_available() != 0
}

/// A function applied to a linear layer's output inside the same pass as its bias.
public enum Activation: Sendable {
    case none
    /// The erf form of nn.GELU().
    case gelu
}

/// A linear layer y = act(x @ W^T + b) whose weights are prepared once for the chosen
/// precision. The bias and the activation are applied in one pass over the output (fp32) or
/// inside oneDNN's matmul (bf16), not as separate passes over a large tensor.
/// In bf16 the float32 weights are not kept (the bf16 copy is the layer).
public final class Linear: @unchecked Sendable {
    /// [out, in]; empty when the layer runs in bf16.
    public let weight: Tensor
    public let bias: Tensor?
    public let activation: Activation
    let outFeatures: Int, inFeatures: Int
    public let precision: Precision
    private let bf16: OpaquePointer?

    public init(weight: Tensor, bias: Tensor?, precision: Precision = .fp32, activation: Activation = .none) {
        self.bias = bias
        self.activation = activation
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        var handle: OpaquePointer?
        if precision == .bf16 && CPUCapabilities.bf16Available {
            let (n, k) = (Int64(weight.shape[0]), Int64(weight.shape[1]))
            let g: Int32 = activation == .gelu ? 1 : 0
            handle = weight.data.withUnsafeBufferPointer { wp in
                if let bias {
                    return bias.data.withUnsafeBufferPointer { bp in asn_bf16_linear_create_fused(wp.baseAddress!, bp.baseAddress!, n, k, g) }
                }
                return asn_bf16_linear_create_fused(wp.baseAddress!, nil, n, k, g)
            }
        }
        // Fall back to fp32 where oneDNN cannot build a bf16 matmul.
        self.bf16 = handle
        self.precision = handle == nil ? .fp32 : precision
        self.weight = handle == nil ? weight : Tensor(zeros: [0])
    }

    deinit { if let bf16 { asn_bf16_linear_free(bf16) } }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let inF = inFeatures, outF = outFeatures
        precondition(x.shape.last == inF, "linear: input \(x.shape) vs weight [\(outF), \(inF)]")
        let rows = x.count / inF
        var shape = x.shape
        shape[shape.count - 1] = outF
        let gelu: Int32 = activation == .gelu ? 1 : 0
        let out = [Float](unsafeUninitializedCapacity: rows * outF) { op, count in
            let o = op.baseAddress!
            x.data.withUnsafeBufferPointer { xp in
                let xb = xp.baseAddress!
                if let bf16 {
                    // Inputs to bfloat16 on all cores, then one fused oneDNN matmul.
                    let converted = BF16Matrix(converting: xb, rows: rows, columns: inF)
                    Parallel.pinGEMMThreads()
                    let rc = asn_bf16_linear_run_converted(bf16, converted.pointer, Int64(rows), o, 0)
                    precondition(rc == 0, "oneDNN bf16 matmul failed (\(rc)) for \(rows)x\(outF)x\(inF)")
                } else {
                    weight.data.withUnsafeBufferPointer { wp in
                        GEMM.sgemm(false, true, m: rows, n: outF, k: inF, a: xb, lda: inF, b: wp.baseAddress!, ldb: inF,
                                   c: o, ldc: outF)
                    }
                    if bias != nil || gelu != 0 {
                        // Bias (a NULL pointer when there is none) and activation in one pass.
                        let hasBias = bias != nil
                        (bias?.data ?? []).withUnsafeBufferPointer { bp in
                            let b = hasBias ? bp.baseAddress : nil
                            Parallel.chunks(rows, minimum: max(1, 16384 / max(1, outF))) { r in
                                asn_bias_act_rows(o + r.lowerBound * outF, r.count, outF, b, gelu)
                            }
                        }
                    }
                }
            }
            count = rows * outF
        }
        return Tensor(shape: shape, data: out)
    }

    /// The layer with its output left in bfloat16 (after bias and activation), for a bf16 layer
    /// whose output only feeds another bf16 layer: no float32 output is written and read back.
    /// nil for a float32 layer, or where oneDNN cannot make this output type.
    public func bf16Output(_ x: Tensor) -> BF16Matrix? {
        guard let bf16 else { return nil }
        precondition(x.shape.last == inFeatures, "linear: input \(x.shape) vs weight [\(outFeatures), \(inFeatures)]")
        let rows = x.count / inFeatures
        let converted = x.data.withUnsafeBufferPointer { BF16Matrix(converting: $0.baseAddress!, rows: rows, columns: inFeatures) }
        let out = BF16Matrix(rows: rows, columns: outFeatures)
        Parallel.pinGEMMThreads()
        return asn_bf16_linear_run_to_bf16(bf16, converted.pointer, Int64(rows), out.pointer) == 0 ? out : nil
    }

    /// The layer on an input already in bfloat16 (a bf16 layer's `bf16Output`): [rows, out].
    public func callAsFunction(_ x: BF16Matrix) -> Tensor {
        precondition(x.columns == inFeatures, "linear: bf16 input with \(x.columns) columns vs weight [\(outFeatures), \(inFeatures)]")
        guard let bf16 else { preconditionFailure("a bfloat16 input needs a bf16 layer") }
        let rows = x.rows, outF = outFeatures
        let out = [Float](unsafeUninitializedCapacity: rows * outF) { op, count in
            Parallel.pinGEMMThreads()
            let rc = asn_bf16_linear_run_converted(bf16, x.pointer, Int64(rows), op.baseAddress!, 0)
            precondition(rc == 0, "oneDNN bf16 matmul failed (\(rc)) for \(rows)x\(outF)x\(inFeatures)")
            count = rows * outF
        }
        return Tensor(shape: [rows, outF], data: out)
    }
}

/// A row-major bfloat16 matrix in memory this object owns (activations between bf16 layers).
public final class BF16Matrix {
    public let rows: Int, columns: Int
    let pointer: UnsafeMutablePointer<UInt16>

    init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
        pointer = .allocate(capacity: max(1, rows * columns))
    }

    /// Float32 values converted (round to nearest even) on all cores.
    convenience init(converting x: UnsafePointer<Float>, rows: Int, columns: Int) {
        self.init(rows: rows, columns: columns)
        let p = pointer
        Parallel.chunks(rows * columns, minimum: 65536) { r in
            asn_to_bf16(x + r.lowerBound, p + r.lowerBound, Int64(r.count), 1)
        }
    }

    deinit { pointer.deallocate() }
}
