/// One RESP2 value (https://redis.io/docs/latest/develop/reference/protocol-spec/).
public enum RESPValue: Hashable, Sendable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// A bulk string; nil is the null bulk string (`$-1`).
    case bulkString([UInt8]?)
    /// An array; nil is the null array (`*-1`).
    case array([RESPValue]?)

    /// The value as text (simple or bulk string, or an integer), if it is one.
    public var string: String? {
        switch self {
        case .simpleString(let s): return s
        case .bulkString(let b?): return String(decoding: b, as: UTF8.self)
        case .integer(let i): return String(i)
        default: return nil
        }
    }

    /// The value as an integer (integer reply or a numeric string), if it is one.
    public var int: Int64? {
        switch self {
        case .integer(let i): return i
        default: return string.flatMap { Int64($0) }
        }
    }

    /// The elements of an array reply.
    public var elements: [RESPValue]? {
        if case .array(let a?) = self { return a }
        return nil
    }

    /// Whether this is a null bulk string or null array.
    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): return true
        default: return false
        }
    }
}

/// Encodes commands the way Redis expects them from clients: an array of bulk strings.
public enum RESPEncoder {
    /// The wire bytes of one command, e.g. `["SET", "k", "v"]`.
    public static func command(_ arguments: [String]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 + arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        out.append(UInt8(ascii: "*"))
        out.append(contentsOf: String(arguments.count).utf8)
        out.append(contentsOf: [13, 10])
        for a in arguments {
            out.append(UInt8(ascii: "$"))
            out.append(contentsOf: String(a.utf8.count).utf8)
            out.append(contentsOf: [13, 10])
            out.append(contentsOf: a.utf8)
            out.append(contentsOf: [13, 10])
        }
        return out
    }
}
