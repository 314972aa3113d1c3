/// A lexical check of a TOML document's shape, run before the text reaches toml++ (inside
/// TOMLKit), which stops the process with an assertion on some malformed keys and table
/// headers instead of reporting an error. It checks what TOML's grammar fixes outside values:
/// every statement is a comment, a table header (`[a.b]`, `[[a]]`) or a dotted key followed by
/// `=`; keys are bare (A-Z a-z 0-9 _ -) or quoted; control characters appear nowhere (tab
/// aside) and non-ASCII only in strings and comments. Values are skipped (strings, arrays and
/// inline tables across lines included) and left to the parser.
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

        /// A value: skipped to the end of its statement, through strings, comments inside
        /// arrays, and nested arrays and inline tables.
        mutating func value() -> Problem? {
            spaces()
            var depth = 0
            var sawSomething = false
            while let c = peek {
                if c == 0x22 || c == 0x27 {
                    if let p = string() { return p }
                } else if c == 0x5B || c == 0x7B {
                    depth += 1
                    i += 1
                } else if c == 0x5D || c == 0x7D {
                    guard depth > 0 else { return problem("an unmatched '\(Character(UnicodeScalar(c)))'") }
                    depth -= 1
                    i += 1
                } else if c == 0x23 {
                    if let p = comment() { return p }
                } else if c == 0x0A {
                    if depth == 0 { break }
                    newline()
                } else if c >= 0x80 {
                    return problem("a non-ASCII character outside a string or comment")
                } else if let p = control(c), c != 0x0D {
                    return p
                } else {
                    i += 1
                }
                sawSomething = true
            }
            if depth > 0 { return problem("an array or inline table not closed") }
            return sawSomething ? nil : problem("a value is missing after '='")
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
