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

        /// A short description for error messages: never the whole value, which may be nested
        /// thousands deep (describing it recursed until the stack overflowed: fuzzing).
        var summary: String {
            switch self {
            case .none: return "None"
            case .bool(let b): return "\(b)"
            case .int(let i): return "\(i)"
            case .float(let f): return "\(f)"
            case .string(let s): return "'\(s.prefix(60))\(s.count > 60 ? "..." : "")'"
            case .tuple(let t): return "a tuple of \(t.count)"
            case .list(let l): return "a list of \(l.count)"
            case .dict(let d, _): return "a dict of \(d.count)"
            case .global(let m, let n): return "\(m.prefix(60)).\(n.prefix(60))"
            case .storage: return "a storage"
            case .tensor: return "a tensor"
            case .mark: return "a MARK"
            }
        }
    }

    /// A value on the stack or in the memo with how deeply it nests (a leaf is 0).
    struct Entry {
        var value: Value
        var depth: Int
    }

    /// Values nested deeper than this are refused: a state dict nests a few levels, and a
    /// pickle of 5,000 nested tuples overflowed the stack of whatever walked it (fuzzing).
    static let maxDepth = 64

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
    var stack: [Entry] = []
    var memo: [Int: Entry] = [:]

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

    mutating func popEntry() throws -> Entry {
        guard let e = stack.popLast() else { throw CheckpointError.malformedPickle("stack underflow at byte \(pos)") }
        return e
    }

    mutating func pop() throws -> Value { try popEntry().value }

    mutating func popMark() throws -> [Entry] {
        guard let m = stack.lastIndex(where: { if case .mark = $0.value { return true } else { return false } }) else {
            throw CheckpointError.malformedPickle("no MARK at byte \(pos)")
        }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    /// Pushes `value`, which holds `children` (and nests as deep as `atLeast`).
    mutating func push(_ value: Value, holding children: [Entry] = [], atLeast: Int = 0) throws {
        let depth = max(atLeast, (children.map(\.depth).max() ?? -1) + 1)
        guard depth <= Self.maxDepth else {
            throw CheckpointError.malformedPickle("values nested more than \(Self.maxDepth) deep at byte \(pos)")
        }
        stack.append(Entry(value: value, depth: depth))
    }

    static func key(_ v: Value) throws -> String {
        guard case .string(let s) = v else { throw CheckpointError.malformedPickle("dict key is not a string: \(v.summary)") }
        return s
    }

    mutating func setItems(_ pairs: [Entry]) throws {
        let target = try popEntry()
        guard case .dict(var d, var order) = target.value else { throw CheckpointError.malformedPickle("SETITEMS on a non-dict") }
        var i = 0
        while i + 1 < pairs.count {
            let k = try Self.key(pairs[i].value)
            if d[k] == nil { order.append(k) }
            d[k] = pairs[i + 1].value
            i += 2
        }
        try push(.dict(d, order: order), holding: pairs, atLeast: target.depth)
    }

    mutating func reduce(_ callable: Value, _ args: Value) throws -> Value {
        guard case .global(let m, let n) = callable, case .tuple(let a) = args else {
            throw CheckpointError.malformedPickle("REDUCE of \(callable.summary)")
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
            case 0x7D: try push(.dict([:], order: []))  // EMPTY_DICT
            case 0x5D: try push(.list([]))  // EMPTY_LIST
            case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
            case 0x28: try push(.mark)  // MARK
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4B: try push(.int(Int(try byte())))  // BININT1
            case 0x4D: try push(.int(try uint(2)))  // BININT2
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8A:  // LONG1
                let n = Int(try byte())
                guard n <= 8 else { throw CheckpointError.malformedPickle("integer too long") }
                let b = try read(n)
                var v: Int64 = 0
                for (i, x) in b.enumerated() { v |= Int64(x) << (8 * Int64(i)) }
                if n > 0 && n < 8 && (b.last! & 0x80) != 0 { v -= Int64(1) << (8 * Int64(n)) }
                try push(.int(Int(v)))
            case 0x47:  // BINFLOAT
                let b = try read(8)
                try push(.float(Double(bitPattern: b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: try push(.string(String(decoding: try read(try uint(4)), as: UTF8.self)))  // BINUNICODE
            case 0x8C: try push(.string(String(decoding: try read(Int(try byte())), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x55: try push(.string(String(decoding: try read(Int(try byte())), as: UTF8.self)))  // SHORT_BINSTRING
            case 0x54: try push(.string(String(decoding: try read(try uint(4)), as: UTF8.self)))  // BINSTRING
            case 0x71: memo[Int(try byte())] = stack.last  // BINPUT
            case 0x72: memo[try uint(4)] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let i = op == 0x68 ? Int(try byte()) : try uint(4)
                guard let e = memo[i] else { throw CheckpointError.malformedPickle("memo \(i) missing") }
                stack.append(e)
            case 0x63:  // GLOBAL
                let module = try line(), name = try line()
                guard Self.allowedGlobal(module, name) else { throw CheckpointError.forbiddenPickle("global \(module).\(name)") }
                try push(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard case .string(let name) = n, case .string(let module) = m else { throw CheckpointError.malformedPickle("STACK_GLOBAL") }
                guard Self.allowedGlobal(module, name) else { throw CheckpointError.forbiddenPickle("global \(module).\(name)") }
                try push(.global(module: module, name: name))
            case 0x74, 0x85, 0x86, 0x87:  // TUPLE, TUPLE1, TUPLE2, TUPLE3
                var items: [Entry]
                if op == 0x74 {
                    items = try popMark()
                } else {
                    items = []
                    for _ in 0..<Int(op - 0x84) { items.insert(try popEntry(), at: 0) }
                }
                try push(.tuple(items.map(\.value)), holding: items)
            case 0x51:  // BINPERSID
                let pid = try pop()
                guard case .tuple(let t) = pid, t.count == 5, case .string("storage") = t[0],
                    case .global("torch", let dtype) = t[1], case .string(let key) = t[2], case .int(let numel) = t[4]
                else { throw CheckpointError.forbiddenPickle("persistent id \(pid.summary)") }
                try push(.storage(StorageRef(dtype: dtype, key: key, numel: numel)))
            case 0x52:  // REDUCE
                let args = try pop(), callable = try pop()
                try push(try reduce(callable, args))
            case 0x62:  // BUILD: state for an object; state dicts carry `_metadata` here, ignored.
                _ = try pop()
            case 0x73:  // SETITEM
                let v = try popEntry(), k = try popEntry()
                try setItems([k, v])
            case 0x75: try setItems(try popMark())  // SETITEMS
            case 0x61:  // APPEND
                let v = try popEntry(), target = try popEntry()
                guard case .list(var l) = target.value else { throw CheckpointError.malformedPickle("APPEND") }
                l.append(v.value)
                try push(.list(l), holding: [v], atLeast: target.depth)
            case 0x65:  // APPENDS
                let items = try popMark(), target = try popEntry()
                guard case .list(var l) = target.value else { throw CheckpointError.malformedPickle("APPENDS") }
                l += items.map(\.value)
                try push(.list(l), holding: items, atLeast: target.depth)
            default:
                throw CheckpointError.forbiddenPickle(String(format: "opcode 0x%02x at byte %d", op, pos - 1))
            }
        }
    }
}
