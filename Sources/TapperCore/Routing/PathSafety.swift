/// The gateway's rule for ambiguous request paths: reject, never normalise.
///
/// The gateway forwards the request target byte for byte, and upstreams (uvicorn, Starlette)
/// decode percent-escapes before routing. A path the gateway and the upstream could read
/// differently must not be proxied, or a request matched to one endpoint could reach another:
///
/// - dot segments, raw or encoded (`/a/../b`, `/a/%2e%2e/b`, `/./`);
/// - encoded slashes and backslashes (`%2F`, `%5C`), which become separators after decoding;
/// - raw backslashes, which some servers treat as `/`;
/// - NUL or other control bytes, raw or encoded.
///
/// Such requests get 400. Double slashes are not ambiguous (they produce an empty segment that
/// matches no route template), so they simply fail to match.
public enum PathSafety {
    public enum Violation: String, Sendable {
        case dotSegment = "dot segments ('.' or '..') are not allowed in paths"
        case encodedSeparator = "encoded '/' or '\\' (%2F, %5C) are not allowed in paths"
        case backslash = "'\\' is not allowed in paths"
        case controlCharacter = "control characters are not allowed in paths"
        case badEscape = "malformed percent-encoding in the path"
    }

    /// Checks the path part (before `?`) of a request target.
    ///
    /// The concrete overloads run over the contiguous UTF-8 bytes: the generic version, called
    /// from another module, is not specialized and costs several times more per byte.
    public static func check(_ path: Substring) -> Violation? {
        if let v = path.utf8.withContiguousStorageIfAvailable({ check(bytes: $0) }) { return v }
        return checkGeneric(path)
    }

    public static func check(_ path: String) -> Violation? {
        if let v = path.utf8.withContiguousStorageIfAvailable({ check(bytes: $0) }) { return v }
        return checkGeneric(path)
    }

    public static func check<S: StringProtocol>(_ path: S) -> Violation? {
        checkGeneric(path)
    }

    /// ``check(_:)`` over the path's UTF-8 bytes.
    public static func check(bytes: UnsafeBufferPointer<UInt8>) -> Violation? {
        check(iterating: bytes.makeIterator())
    }

    static func checkGeneric<S: StringProtocol>(_ path: S) -> Violation? {
        check(iterating: path.utf8.makeIterator())
    }

    static func check<I: IteratorProtocol<UInt8>>(iterating iterator: I) -> Violation? {
        var bytes = iterator
        var segmentStart = true
        var dots = 0  // dots seen since the segment began, -1 once anything else appears
        func endSegment() -> Violation? {
            if dots == 1 || dots == 2 { return .dotSegment }
            return nil
        }
        while let b = bytes.next() {
            var c = b
            if b == UInt8(ascii: "%") {
                guard let h = bytes.next(), let l = bytes.next(), let hv = PercentDecoding.hex(h), let lv = PercentDecoding.hex(l) else {
                    return .badEscape
                }
                c = hv << 4 | lv
                if c == UInt8(ascii: "/") || c == UInt8(ascii: "\\") { return .encodedSeparator }
            } else if b == UInt8(ascii: "\\") {
                return .backslash
            }
            if c < 0x20 || c == 0x7F { return .controlCharacter }
            if b == UInt8(ascii: "/") {
                if !segmentStart, let v = endSegment() { return v }
                segmentStart = false
                dots = 0
                continue
            }
            segmentStart = false
            if c == UInt8(ascii: ".") {
                if dots >= 0 { dots += 1 }
            } else {
                dots = -1
            }
        }
        return endSegment()
    }
}
