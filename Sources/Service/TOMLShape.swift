import Foundation

/// A lexical check of a TOML document's shape, run before the text reaches toml++ (inside
/// TOMLKit), which stops the process with an assertion on some malformed keys and table
/// headers instead of reporting an error. It checks what TOML's grammar fixes outside values:
/// every statement is a comment, a table header (`[a.b]`, `[[a]]`) or a dotted key followed by
/// `=`; keys are bare (A-Z a-z 0-9 _ -) or quoted; values are lexically a string, a number, a
/// boolean, a date or time, an array or an inline table (toml++ also asserts on malformed
/// values); control characters appear nowhere (tab aside) and non-ASCII only in strings and
/// comments. What the values mean is left to the parser and to ServiceConfig.
enum TOMLShape {
    struct Problem: Equatable {
        var line: Int
        var column: Int
        var message: String
    }

    static func firstProblem(_ text: String) -> Problem? {
        var s = Scanner(bytes: Array(text.utf8))
        return s.document()
    }

    struct Scanner {
        let bytes: [UInt8]
        var i = 0
        var line = 1
        var lineStart = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
        func problem(_ message: String) -> Problem { Problem(line: line, column: i - lineStart + 1, message: message) }
        func starts(_ s: String) -> Bool {
            let u = Array(s.utf8)
            return i + u.count <= bytes.count && Array(bytes[i..<(i + u.count)]) == u
        }

        static func isBare(_ c: UInt8) -> Bool {
            (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
        }

        /// Control characters other than tab, CR and LF are refused wherever they are.
        func control(_ c: UInt8) -> Problem? {
            guard (c < 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) || c == 0x7F else { return nil }
            let hex = String(c, radix: 16, uppercase: true)
            return problem("a control character (0x\(hex.count == 1 ? "0" + hex : hex))")
        }

        mutating func newline() {
            i += 1
            line += 1
            lineStart = i
        }

        mutating func spaces() { while let c = peek, c == 0x20 || c == 0x09 { i += 1 } }

        /// A comment to the end of the line (the newline not taken).
        mutating func comment() -> Problem? {
            while let c = peek, c != 0x0A {
                if let p = control(c), c != 0x0D { return p }
                i += 1
            }
            return nil
        }

        /// The rest of the line after a header or a value: spaces, an optional comment, a newline.
        mutating func endOfLine() -> Problem? {
            spaces()
            if peek == 0x23, let p = comment() { return p }
            if peek == 0x0D { i += 1 }
            guard let c = peek else { return nil }
            guard c == 0x0A else { return problem(c >= 0x80 ? "a non-ASCII character outside a string or comment" : "unexpected '\(Character(UnicodeScalar(c)))' after the end of the statement") }
            newline()
            return nil
        }

        /// A string starting here (its opening quote at `i`).
        mutating func string() -> Problem? {
            let quote = bytes[i]
            let multi = starts(quote == 0x22 ? "\"\"\"" : "'''")
            let close = multi ? (quote == 0x22 ? "\"\"\"" : "'''") : (quote == 0x22 ? "\"" : "'")
            i += multi ? 3 : 1
            while let c = peek {
                if c == 0x0A {
                    guard multi else { return problem("a string not closed on its line") }
                    newline()
                    continue
                }
                if let p = control(c), c != 0x0D { return p }
                if quote == 0x22 && c == 0x5C {
                    i += 2
                    continue
                }
                if starts(close) {
                    i += close.utf8.count
                    while multi, peek == quote { i += 1 }  // up to two quotes may end the content
                    return nil
                }
                i += 1
            }
            return problem("a string not closed")
        }

        /// A dotted key: bare or quoted parts joined by dots.
        mutating func key() -> Problem? {
            while true {
                spaces()
                guard let c = peek else { return problem("a key is missing") }
                if c == 0x22 || c == 0x27 {
                    let start = line
                    if let p = string() { return p }
                    if line != start { return problem("a key cannot span lines") }
                } else if Self.isBare(c) {
                    while let d = peek, Self.isBare(d) { i += 1 }
                } else {
                    if let p = control(c) { return p }
                    return problem(c >= 0x80 ? "a non-ASCII character in a key (quote it)" : "a key is missing or malformed")
                }
                spaces()
                guard peek == 0x2E else { return nil }
                i += 1
            }
        }

        /// Spaces, newlines and comments between the elements of an array.
        mutating func gap() -> Problem? {
            while let c = peek {
                if c == 0x20 || c == 0x09 || c == 0x0D {
                    i += 1
                } else if c == 0x0A {
                    newline()
                } else if c == 0x23 {
                    if let p = comment() { return p }
                } else {
                    return nil
                }
            }
            return nil
        }

        /// A value, lexically: a string, a number, a boolean, a date or time, an array (over
        /// lines, with comments) or an inline table (on one line).
        mutating func value(depth: Int = 0) -> Problem? {
            spaces()
            guard depth < 64 else { return problem("arrays or tables nested too deep") }
            guard let c = peek, c != 0x0A, c != 0x23 else { return problem("a value is missing") }
            switch c {
            case 0x22, 0x27:
                return string()
            case 0x5B:  // array
                i += 1
                while true {
                    if let p = gap() { return p }
                    if peek == 0x5D { i += 1; return nil }
                    if let p = value(depth: depth + 1) { return p }
                    if let p = gap() { return p }
                    if peek == 0x2C { i += 1; continue }
                    if peek == 0x5D { i += 1; return nil }
                    return problem(peek == nil ? "an array not closed" : "',' or ']' expected in an array")
                }
            case 0x7B:  // inline table
                i += 1
                spaces()
                if peek == 0x7D { i += 1; return nil }
                while true {
                    if let p = key() { return p }
                    guard peek == 0x3D else { return problem("'=' expected after the key") }
                    i += 1
                    if let p = value(depth: depth + 1) { return p }
                    spaces()
                    if peek == 0x2C { i += 1; continue }
                    if peek == 0x7D { i += 1; return nil }
                    return problem("',' or '}' expected in an inline table")
                }
            default:
                let start = i
                while let d = peek, Self.isBare(d) || d == 0x2B || d == 0x2E || d == 0x3A { i += 1 }
                let token = String(decoding: bytes[start..<i], as: UTF8.self)
                guard !token.isEmpty, Self.isScalar(token) else {
                    if i == start, let p = control(c) { return p }
                    i = start
                    return problem(c >= 0x80 ? "a non-ASCII character outside a string or comment" : "a value that is not a string, number, boolean, date, array or table")
                }
                return nil
            }
        }

        static let scalarPatterns: [NSRegularExpression] = [
            "true|false",
            "[+-]?(0|[1-9](_?[0-9])*)",
            "[+-]?(0|[1-9](_?[0-9])*)((\\.[0-9](_?[0-9])*)([eE][+-]?[0-9](_?[0-9])*)?|[eE][+-]?[0-9](_?[0-9])*)",
            "0x[0-9A-Fa-f](_?[0-9A-Fa-f])*", "0o[0-7](_?[0-7])*", "0b[01](_?[01])*",
            "[+-]?(inf|nan)",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?",
            "[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?",
        ].map { try! NSRegularExpression(pattern: "^(" + $0 + ")$") }

        static func isScalar(_ token: String) -> Bool {
            let range = NSRange(token.startIndex..., in: token)
            return scalarPatterns.contains { $0.firstMatch(in: token, range: range) != nil }
        }

        mutating func document() -> Problem? {
            while let c = peek {
                if c == 0x0A { newline(); continue }
                if c == 0x20 || c == 0x09 || c == 0x0D { i += 1; continue }
                if c == 0x23 {
                    if let p = comment() { return p }
                    continue
                }
                if c == 0x5B {
                    let array = starts("[[")
                    i += array ? 2 : 1
                    if let p = key() { return p }
                    guard starts(array ? "]]" : "]") else { return problem("a table header not closed with '\(array ? "]]" : "]")'") }
                    i += array ? 2 : 1
                    if let p = endOfLine() { return p }
                    continue
                }
                if let p = key() { return p }
                guard peek == 0x3D else { return problem("'=' expected after the key") }
                i += 1
                if let p = value() { return p }
                if let p = endOfLine() { return p }
            }
            return nil
        }
    }
}
