import Foundation

/// A restricted unpickler for PyTorch state dicts (pickle protocols 2-4).
///
/// It understands only what `torch.save(model.state_dict())` writes: dicts (OrderedDict),
/// lists, tuples, strings, numbers, booleans, None, persistent storage references and the
/// tensor rebuild functions. Any other global (any callable a pickle could ask to run) is
/// refused before anything is called; nothing is ever executed.
struct RestrictedUnpickler {
    /// A storage referenced by a persistent id: ('storage', torch.XStorage, key, location, numel).
    struct StorageRef: Equatable {
        var dtype: String  // e.g. "FloatStorage"
        var key: String
        var numel: Int
    }

    struct TensorRef: Equatable {
        var storage: StorageRef
        var offset: Int
        var size: [Int]
        var stride: [Int]
    }

    indirect enum Value: Equatable {
        case none
        case bool(Bool)
        case int(Int)
        case float(Double)
        case string(String)
        case tuple([Value])
        case list([Value])
        case dict([String: Value], order: [String])
        case global(module: String, name: String)
        case storage(StorageRef)
        case tensor(TensorRef)
        case mark
    }

    static let storageTypes: Set<String> = [
        "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
        "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
    ]

    static func allowedGlobal(_ module: String, _ name: String) -> Bool {
        switch (module, name) {
        case ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"):
            return true
        case ("torch", let n): return storageTypes.contains(n)
        default: return false
        }
    }

    let bytes: [UInt8]
    var pos = 0
    var stack: [Value] = []
    var memo: [Int: Value] = [:]

    init(_ data: Data) { bytes = [UInt8](data) }

    mutating func byte() throws -> UInt8 {
        guard pos < bytes.count else { throw CheckpointError.malformedPickle("unexpected end at byte \(pos)") }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func read(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, pos + n <= bytes.count else { throw CheckpointError.malformedPickle("unexpected end at byte \(pos)") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    mutating func uint(_ n: Int) throws -> Int {
        let b = try read(n)
        var v = 0
        for (i, x) in b.enumerated() { v |= Int(x) << (8 * i) }
        return v
    }

    mutating func line() throws -> String {
        guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw CheckpointError.malformedPickle("unterminated line") }
        defer { pos = end + 1 }
        return String(decoding: bytes[pos..<end], as: UTF8.self)
    }

    mutating func pop() throws -> Value {
        guard let v = stack.popLast() else { throw CheckpointError.malformedPickle("stack underflow at byte \(pos)") }
        return v
    }

    mutating func popMark() throws -> [Value] {
        guard let m = stack.lastIndex(of: .mark) else { throw CheckpointError.malformedPickle("no MARK at byte \(pos)") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    static func key(_ v: Value) throws -> String {
        guard case .string(let s) = v else { throw CheckpointError.malformedPickle("dict key is not a string: \(v)") }
        return s
    }

    mutating func setItems(_ pairs: [Value]) throws {
        guard case .dict(var d, var order) = try pop() else { throw CheckpointError.malformedPickle("SETITEMS on a non-dict") }
        var i = 0
        while i + 1 < pairs.count {
            let k = try Self.key(pairs[i])
            if d[k] == nil { order.append(k) }
            d[k] = pairs[i + 1]
            i += 2
        }
        stack.append(.dict(d, order: order))
    }

    mutating func reduce(_ callable: Value, _ args: Value) throws -> Value {
        guard case .global(let m, let n) = callable, case .tuple(let a) = args else {
            throw CheckpointError.malformedPickle("REDUCE of \(callable)")
        }
        switch (m, n) {
        case ("collections", "OrderedDict"):
            return .dict([:], order: [])
        case ("torch._utils", "_rebuild_tensor_v2"):
            guard a.count >= 4, case .storage(let s) = a[0], case .int(let off) = a[1],
                case .tuple(let size) = a[2], case .tuple(let stride) = a[3]
            else { throw CheckpointError.malformedPickle("bad _rebuild_tensor_v2 arguments") }
            func ints(_ v: [Value]) throws -> [Int] {
                try v.map { guard case .int(let i) = $0 else { throw CheckpointError.malformedPickle("non-integer size") }; return i }
            }
            return .tensor(TensorRef(storage: s, offset: off, size: try ints(size), stride: try ints(stride)))
        case ("torch._utils", "_rebuild_parameter"):
            guard let first = a.first, case .tensor = first else { throw CheckpointError.malformedPickle("bad _rebuild_parameter") }
            return first
        default:
            throw CheckpointError.forbiddenPickle("call of \(m).\(n)")
        }
    }

    /// Parses the whole pickle and returns its top-level value.
    mutating func load() throws -> Value {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()  // PROTO
            case 0x95: _ = try read(8)  // FRAME
            case 0x2E: return try pop()  // STOP
            case 0x7D: stack.append(.dict([:], order: []))  // EMPTY_DICT
            case 0x5D: stack.append(.list([]))  // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x28: stack.append(.mark)  // MARK
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x4B: stack.append(.int(Int(try byte())))  // BININT1
            case 0x4D: stack.append(.int(try uint(2)))  // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A:  // LONG1
                let n = Int(try byte())
                guard n <= 8 else { throw CheckpointError.malformedPickle("integer too long") }
                let b = try read(n)
                var v: Int64 = 0
                for (i, x) in b.enumerated() { v |= Int64(x) << (8 * Int64(i)) }
                if n > 0 && n < 8 && (b.last! & 0x80) != 0 { v -= Int64(1) << (8 * Int64(n)) }
                stack.append(.int(Int(v)))
            case 0x47:  // BINFLOAT
                let b = try read(8)
                stack.append(.float(Double(bitPattern: b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(String(decoding: try read(try uint(4)), as: UTF8.self)))  // BINUNICODE
            case 0x8C: stack.append(.string(String(decoding: try read(Int(try byte())), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x55: stack.append(.string(String(decoding: try read(Int(try byte())), as: UTF8.self)))  // SHORT_BINSTRING
            case 0x54: stack.append(.string(String(decoding: try read(try uint(4)), as: UTF8.self)))  // BINSTRING
            case 0x71: memo[Int(try byte())] = stack.last  // BINPUT
            case 0x72: memo[try uint(4)] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let i = op == 0x68 ? Int(try byte()) : try uint(4)
                guard let v = memo[i] else { throw CheckpointError.malformedPickle("memo \(i) missing") }
                stack.append(v)
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                guard Self.allowedGlobal(module, name) else { throw CheckpointError.forbiddenPickle("global \(module).\(name)") }
                stack.append(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard case .string(let name) = n, case .string(let module) = m else { throw CheckpointError.malformedPickle("STACK_GLOBAL") }
                guard Self.allowedGlobal(module, name) else { throw CheckpointError.forbiddenPickle("global \(module).\(name)") }
                stack.append(.global(module: module, name: name))
            case 0x74: stack.append(.tuple(try popMark()))  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))
            case 0x86:
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x51:  // BINPERSID
                let pid = try pop()
                guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0],
                    case .global("torch", let dtype) = t[1], case .string(let key) = t[2], case .int(let numel) = t[4]
                else { throw CheckpointError.forbiddenPickle("persistent id \(pid)") }
                stack.append(.storage(StorageRef(dtype: dtype, key: key, numel: numel)))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x62:  // BUILD: state for an object; state dicts carry `_metadata` here, ignored.
                _ = try pop()
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                try setItems([k, v])
            case 0x75: try setItems(try popMark())  // SETITEMS
            case 0x61:  // APPEND
                let v = try pop()
                guard case .list(var l) = try pop() else { throw CheckpointError.malformedPickle("APPEND") }
                l.append(v)
                stack.append(.list(l))
            case 0x65:  // APPENDS
                let items = try popMark()
                guard case .list(var l) = try pop() else { throw CheckpointError.malformedPickle("APPENDS") }
                l += items
                stack.append(.list(l))
            default:
                throw CheckpointError.forbiddenPickle(String(format: "opcode 0x%02x at byte %d", op, pos - 1))
            }
        }
    }
}
