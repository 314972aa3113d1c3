import CKernels
/// A dense, contiguous, row-major Float32 tensor. Value semantics (copy on write through the
/// array); kernels work on the flat storage with explicit shapes.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) does not hold \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// The output of a GEMM with beta 0 and inner dimension `inner`: such a GEMM writes every
    /// value without reading it, so the storage is left unfilled; with inner 0 the GEMM
    /// writes nothing (oneDNN's sgemm leaves C as it was), so it is zero-filled then.
    public init(gemmOutput shape: [Int], inner: Int) {
        let n = shape.reduce(1, *)
        if inner == 0 { self.init(zeros: shape); return }
        self.init(shape: shape, data: [Float](unsafeUninitializedCapacity: n) { _, count in count = n })
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, data: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// The same values under another shape (same element count).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            s[i] = count / s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
        }
        return Tensor(shape: s, data: data)
    }

    /// Largest absolute value.
    public var maxAbs: Float { data.reduce(0) { max($0, abs($1)) } }

    /// Largest absolute element-wise difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }

    /// Permutes the axes: result axis i is source axis `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order).count == rank)
        if order == [1, 0] { return transposed2D() }
        let newShape = order.map { shape[$0] }
        var srcStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { srcStrides[i] = srcStrides[i + 1] * shape[i + 1] }
        let strides = order.map { srcStrides[$0] }
        var out = [Float](repeating: 0, count: count)
        var idx = [Int](repeating: 0, count: rank)
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let inner = newShape[rank - 1], innerStride = strides[rank - 1]
                var o = 0
                let outer = count / max(inner, 1)
                for _ in 0..<outer {
                    var base = 0
                    for d in 0..<(rank - 1) { base += idx[d] * strides[d] }
                    for i in 0..<inner { dst[o + i] = src[base + i * innerStride] }
                    o += inner
                    var d = rank - 2
                    while d >= 0 {
                        idx[d] += 1
                        if idx[d] < newShape[d] { break }
                        idx[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return Tensor(shape: newShape, data: out)
    }

    /// [rows, cols] -> [cols, rows], blocked and on all cores (tokens <-> channels-first).
    func transposed2D() -> Tensor {
        let (rows, cols) = (shape[0], shape[1])
        let out = [Float](unsafeUninitializedCapacity: count) { buf, n in
            if count > 0 {
                let dst = buf.baseAddress!
                data.withUnsafeBufferPointer { src in
                    let sp = src.baseAddress!
                    Parallel.chunks(rows, minimum: max(32, 65536 / max(cols, 1))) { r in
                        asn_transpose(sp, rows, cols, dst, r.lowerBound, r.upperBound)
                    }
                }
            }
            n = count
        }
        return Tensor(shape: [cols, rows], data: out)
    }
}
