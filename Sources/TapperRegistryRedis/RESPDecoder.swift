/// Parses RESP2 values from bytes as they arrive. Pure: no I/O, so partial reads are tested with
/// byte fixtures.
public enum RESPDecoder {
    /// A protocol violation: the connection cannot be trusted any more.
    public struct ProtocolError: Error, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// Nesting deeper than this is refused (a hostile or broken server could exhaust the stack).
    static let maxDepth = 32
    /// Bulk strings and arrays longer than this are refused.
    static let maxLength = 512 * 1024 * 1024

    /// Decodes one value from the start of `bytes`.
    /// - Returns: the value and how many bytes it used, or nil when more bytes are needed.
    /// - Throws: ``ProtocolError`` on bytes that are not RESP2.
    public static func decode<C: RandomAccessCollection>(_ bytes: C) throws(ProtocolError) -> (value: RESPValue, consumed: Int)?
    where C.Element == UInt8, C.Index == Int {
        var position = bytes.startIndex
        guard let value = try parse(bytes, &position, depth: 0) else { return nil }
        return (value, position - bytes.startIndex)
    }

    private static func parse<C: RandomAccessCollection>(_ b: C, _ p: inout Int, depth: Int) throws(ProtocolError) -> RESPValue?
    where C.Element == UInt8, C.Index == Int {
        guard depth <= maxDepth else { throw ProtocolError(description: "RESP nesting deeper than \(maxDepth)") }
        guard p < b.endIndex else { return nil }
        let type = b[p]
        var q = p + 1
        guard let line = readLine(b, &q) else { return nil }
        switch type {
        case UInt8(ascii: "+"):
            p = q
            return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"):
            p = q
            return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"):
            guard let n = Int64(String(decoding: line, as: UTF8.self)) else { throw ProtocolError(description: "bad RESP integer") }
            p = q
            return .integer(n)
        case UInt8(ascii: "$"):
            let n = try length(line)
            if n < 0 {
                p = q
                return .bulkString(nil)
            }
            guard b.endIndex - q >= n + 2 else { return nil }
            guard b[q + n] == 13, b[q + n + 1] == 10 else { throw ProtocolError(description: "RESP bulk string not terminated by CRLF") }
            let body = Array(b[q..<(q + n)])
            p = q + n + 2
            return .bulkString(body)
        case UInt8(ascii: "*"):
            let n = try length(line)
            if n < 0 {
                p = q
                return .array(nil)
            }
            var items: [RESPValue] = []
            items.reserveCapacity(min(n, 1024))
            for _ in 0..<n {
                guard let item = try parse(b, &q, depth: depth + 1) else { return nil }
                items.append(item)
            }
            p = q
            return .array(items)
        default:
            throw ProtocolError(description: "unknown RESP type byte \(type)")
        }
    }

    /// The bytes up to CRLF (advancing past it), or nil when CRLF has not arrived yet.
    private static func readLine<C: RandomAccessCollection>(_ b: C, _ q: inout Int) -> [UInt8]? where C.Element == UInt8, C.Index == Int {
        var i = q
        while i + 1 < b.endIndex {
            if b[i] == 13 && b[i + 1] == 10 {
                let line = Array(b[q..<i])
                q = i + 2
                return line
            }
            i += 1
        }
        return nil
    }

    private static func length(_ line: [UInt8]) throws(ProtocolError) -> Int {
        guard let n = Int(String(decoding: line, as: UTF8.self)), n >= -1, n <= maxLength else {
            throw ProtocolError(description: "bad RESP length '\(String(decoding: line, as: UTF8.self))'")
        }
        return n
    }
}
