/// Voxel values in the type a file stored them, so a read-then-write round trip is bit for bit.
/// `floats(scaling:)` gives the physical values.
public enum VoxelData: Equatable, Sendable {
    case uint8([UInt8])
    case int8([Int8])
    case int16([Int16])
    case uint16([UInt16])
    case int32([Int32])
    case float32([Float])
    case float64([Double])

    public var count: Int {
        switch self {
        case .uint8(let a): a.count
        case .int8(let a): a.count
        case .int16(let a): a.count
        case .uint16(let a): a.count
        case .int32(let a): a.count
        case .float32(let a): a.count
        case .float64(let a): a.count
        }
    }

    /// Index of the first NaN or infinite value (float storage only; integers are always finite).
    public func firstNonFinite() -> Int? {
        switch self {
        case .float32(let a): a.firstIndex { !$0.isFinite }
        case .float64(let a): a.firstIndex { !$0.isFinite }
        default: nil
        }
    }

    /// The NIfTI DT_* code of this storage type.
    public var niftiDatatype: Int32 {
        switch self {
        case .uint8: 2
        case .int16: 4
        case .int32: 8
        case .float32: 16
        case .float64: 64
        case .int8: 256
        case .uint16: 512
        }
    }

    public var typeName: String {
        switch self {
        case .uint8: "uint8"
        case .int8: "int8"
        case .int16: "int16"
        case .uint16: "uint16"
        case .int32: "int32"
        case .float32: "float32"
        case .float64: "float64"
        }
    }

    /// Physical values: raw * slope + intercept (NIfTI: a slope of 0 means no scaling).
    /// `range` limits the conversion to part of the voxels (default: all).
    public func floats(slope: Double = 1, intercept: Double = 0, range: Range<Int>? = nil) -> [Float] {
        let scaled = slope != 0 && !(slope == 1 && intercept == 0)
        let r = range ?? 0..<count
        @inline(__always) func conv<T>(_ a: [T], _ f: (T) -> Double) -> [Float] {
            scaled ? a[r].map { Float(f($0) * slope + intercept) } : a[r].map { Float(f($0)) }
        }
        switch self {
        case .uint8(let a): return conv(a) { Double($0) }
        case .int8(let a): return conv(a) { Double($0) }
        case .int16(let a): return conv(a) { Double($0) }
        case .uint16(let a): return conv(a) { Double($0) }
        case .int32(let a): return conv(a) { Double($0) }
        case .float32(let a): return scaled ? conv(a) { Double($0) } : Array(a[r])
        case .float64(let a): return conv(a) { $0 }
        }
    }

    /// Runs `body` over the raw bytes.
    func withUnsafeRawBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .uint8(let a): try a.withUnsafeBytes(body)
        case .int8(let a): try a.withUnsafeBytes(body)
        case .int16(let a): try a.withUnsafeBytes(body)
        case .uint16(let a): try a.withUnsafeBytes(body)
        case .int32(let a): try a.withUnsafeBytes(body)
        case .float32(let a): try a.withUnsafeBytes(body)
        case .float64(let a): try a.withUnsafeBytes(body)
        }
    }

    /// Copies `count` voxels of NIfTI type `datatype` from raw memory.
    static func copy(from raw: UnsafeRawPointer, datatype: Int32, count: Int) -> VoxelData? {
        func arr<T>(_: T.Type) -> [T] {
            Array(UnsafeBufferPointer(start: raw.assumingMemoryBound(to: T.self), count: count))
        }
        switch datatype {
        case 2: return .uint8(arr(UInt8.self))
        case 256: return .int8(arr(Int8.self))
        case 4: return .int16(arr(Int16.self))
        case 512: return .uint16(arr(UInt16.self))
        case 8: return .int32(arr(Int32.self))
        case 16: return .float32(arr(Float.self))
        case 64: return .float64(arr(Double.self))
        default: return nil
        }
    }
}
