/// A parsed path template in FastAPI/Starlette syntax: `/users/{user_id}`, `/items/{id:int}`,
/// `/files/{rest:path}`.
///
/// Each parameter occupies a whole path segment; `{rest:path}` must be the last segment and
/// matches the remainder of the path (at least the slash before it, as in Starlette). A template
/// ending in `/` keeps that trailing slash as an empty literal segment, so `/users/` and `/users`
/// are different routes, exactly as in Starlette.
public struct RouteTemplate: Hashable, Sendable, CustomStringConvertible {
    /// Starlette's path convertors.
    public enum Convertor: String, Hashable, Sendable, CaseIterable {
        case str, int, float, uuid, path

        /// Match priority among parameters at one position: typed convertors first (int before
        /// float, since every int is also a float), then `str`, then the `path` catch-all.
        public var rank: Int {
            switch self {
            case .int: return 0
            case .uuid: return 1
            case .float: return 2
            case .str: return 3
            case .path: return 4
            }
        }

        /// Whether a (percent-decoded) segment is accepted by this convertor.
        public func accepts<S: StringProtocol>(_ segment: S) -> Bool {
            let u = segment.utf8
            switch self {
            case .str, .path:
                return !u.isEmpty
            case .int:
                return !u.isEmpty && u.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            case .float:
                // Starlette: [0-9]+(\.[0-9]+)?
                var sawDigitBefore = false
                var sawDot = false
                var digitsAfter = 0
                for b in u {
                    if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                        if sawDot { digitsAfter += 1 } else { sawDigitBefore = true }
                    } else if b == UInt8(ascii: "."), !sawDot {
                        sawDot = true
                    } else {
                        return false
                    }
                }
                return sawDigitBefore && (!sawDot || digitsAfter > 0)
            case .uuid:
                // Starlette: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}
                let bytes = Array(u)
                guard bytes.count == 36 else { return false }
                for (i, b) in bytes.enumerated() {
                    if i == 8 || i == 13 || i == 18 || i == 23 {
                        if b != UInt8(ascii: "-") { return false }
                    } else if !((b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))) {
                        return false
                    }
                }
                return true
            }
        }
    }

    /// One segment of a template.
    public enum Segment: Hashable, Sendable {
        case literal(String)
        case parameter(name: String, convertor: Convertor)

        /// The segment with parameter names erased: two templates with equal shapes match
        /// exactly the same paths.
        var shape: String {
            switch self {
            case .literal(let s): return s
            case .parameter(_, let c): return "{:\(c.rawValue)}"
            }
        }
    }

    /// The template as written (normalised only by parsing).
    public let raw: String
    public let segments: [Segment]

    /// The names of the parameters, in path order.
    public var parameterNames: [String] {
        segments.compactMap { if case .parameter(let n, _) = $0 { return n } else { return nil } }
    }

    /// The template with parameter names erased, e.g. `/users/{:int}`. Two routes conflict
    /// when they have the same shape and a common method.
    public var shape: String { "/" + segments.map(\.shape).joined(separator: "/") }

    public var description: String { raw }

    /// Parses a template.
    /// - Throws: ``FieldError`` (with an empty field; callers nest it) naming what is malformed.
    public init(parsing raw: String) throws(FieldError) {
        func fail(_ message: String) -> FieldError { FieldError(field: "", message: "'\(Names.printable(raw))': \(message)") }
        // Parsed by Unicode scalar, never by Character: "/" followed by a combining mark is one
        // Character in Swift, but the gateway splits request paths at every "/" byte.
        guard raw.utf8.first == UInt8(ascii: "/") else { throw fail("a path template must start with '/'") }
        guard raw.utf8.count <= 2048 || raw.unicodeScalars.count <= 2048 else { throw fail("a path template must be at most 2048 characters") }
        if TextRules.hasControlCharacters(raw) { throw fail("must not contain control characters") }
        for c in raw.unicodeScalars where c == " " || c == "?" || c == "#" || c == "\\" {
            throw fail("must not contain '\(c)'")
        }
        var segments: [Segment] = []
        var names = Set<String>()
        let parts = raw.unicodeScalars.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            Substring(String(String.UnicodeScalarView($0)))
        }
        for (i, part) in parts.enumerated() {
            let isLast = i == parts.count - 1
            if part.isEmpty {
                // Only a trailing slash (or the root template "/") may leave an empty segment.
                guard isLast else { throw fail("empty path segment ('//')") }
                segments.append(.literal(""))
                continue
            }
            if part.unicodeScalars.elementsEqual(".".unicodeScalars) || part.unicodeScalars.elementsEqual("..".unicodeScalars) {
                throw fail("dot segments ('.' or '..') are not allowed")
            }
            let opens = part.unicodeScalars.filter { $0 == "{" }.count
            let closes = part.unicodeScalars.filter { $0 == "}" }.count
            if opens == 0 && closes == 0 {
                guard let decoded = PercentDecoding.decode(part) else { throw fail("invalid percent-encoding in '\(part)'") }
                segments.append(.literal(decoded))
                continue
            }
            guard opens == closes else { throw fail("unbalanced braces in segment '\(part)'") }
            guard opens == 1, part.unicodeScalars.first == "{", part.unicodeScalars.last == "}" else {
                throw fail("a parameter must be a whole path segment like '{name}' (found '\(part)')")
            }
            let inner = part.unicodeScalars.dropFirst().dropLast()
            let pieces = inner.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
            let name = pieces[0]
            guard let first = name.unicodeScalars.first,
                first == "_" || (first.properties.isAlphabetic && first.isASCII),
                name.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) })
            else {
                throw fail("parameter name '\(name)' must be an identifier")
            }
            var convertor = Convertor.str
            if pieces.count == 2 {
                guard let c = Convertor(rawValue: String(pieces[1])) else {
                    throw fail("unknown convertor '\(pieces[1])' (use str, int, float, uuid or path)")
                }
                convertor = c
            }
            guard names.insert(name).inserted else { throw fail("duplicate parameter name '\(name)'") }
            if convertor == .path && !isLast {
                throw fail("'{\(name):path}' must be the last segment")
            }
            segments.append(.parameter(name: name, convertor: convertor))
        }
        self.raw = raw
        self.segments = segments
    }
}

extension Unicode.Scalar {
    fileprivate var isASCII: Bool { value < 0x80 }
}
