/// A W3C Trace Context `traceparent` value (https://www.w3.org/TR/trace-context/#traceparent-header):
/// `version-traceid-parentid-flags`, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
///
/// Ids are kept as integers (the trace id as two halves), so a request's context is four words
/// and formatting it writes 55 bytes without allocating.
public struct TraceParent: Sendable, Hashable, BitwiseCopyable {
    /// The trace id's first 8 bytes (big-endian: the first 16 hex digits).
    public var traceIDHigh: UInt64
    /// The trace id's last 8 bytes.
    public var traceIDLow: UInt64
    /// The span id of the caller (the parent), or of the span this value announces.
    public var spanID: UInt64
    /// The trace flags byte; bit 0 is `sampled`.
    public var flags: UInt8

    /// The `traceparent` length for version `00`.
    public static let length = 55

    public init(traceIDHigh: UInt64, traceIDLow: UInt64, spanID: UInt64, flags: UInt8) {
        self.traceIDHigh = traceIDHigh
        self.traceIDLow = traceIDLow
        self.spanID = spanID
        self.flags = flags
    }

    /// Whether the caller recorded (and asks to record) the trace.
    public var sampled: Bool { flags & 1 != 0 }

    /// Parses a header value by the W3C rules a receiver follows: lower-case hex only, version
    /// `ff` is invalid, version `00` is exactly 55 bytes, a later version may be longer but
    /// only after a `-` (its extra fields are ignored), and an all-zero trace id or parent id is
    /// invalid. Returns nil for anything invalid: the caller then starts a new trace.
    /// - Parameter value: the header value's bytes (surrounding spaces already trimmed).
    public init?(parsing value: UnsafeRawBufferPointer) {
        guard value.count >= Self.length else { return nil }
        guard let v0 = Self.hexNibble(value[0]), let v1 = Self.hexNibble(value[1]) else { return nil }
        let version = v0 << 4 | v1
        if version == 0xFF { return nil }
        if version == 0 {
            guard value.count == Self.length else { return nil }
        } else if value.count > Self.length, value[Self.length] != UInt8(ascii: "-") {
            return nil
        }
        guard value[2] == UInt8(ascii: "-"), value[35] == UInt8(ascii: "-"), value[52] == UInt8(ascii: "-") else { return nil }
        guard let high = Self.hex64(value, at: 3), let low = Self.hex64(value, at: 19), let span = Self.hex64(value, at: 36),
            let f0 = Self.hexNibble(value[53]), let f1 = Self.hexNibble(value[54])
        else { return nil }
        guard high != 0 || low != 0, span != 0 else { return nil }
        self.init(traceIDHigh: high, traceIDLow: low, spanID: span, flags: f0 << 4 | f1)
    }

    /// Parses a header value from a string (tests, tools).
    public init?(parsing value: String) {
        var copy = value
        guard let parsed = copy.withUTF8({ TraceParent(parsing: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    /// Writes the version `00` form (55 bytes) at `out`, which must have room for them.
    public func write(to out: UnsafeMutableRawPointer) {
        out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 0, as: UInt8.self)
        out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 2, as: UInt8.self)
        Self.writeHex(traceIDHigh, to: out + 3)
        Self.writeHex(traceIDLow, to: out + 19)
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 35, as: UInt8.self)
        Self.writeHex(spanID, to: out + 36)
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 52, as: UInt8.self)
        out.storeBytes(of: Self.digit(flags >> 4), toByteOffset: 53, as: UInt8.self)
        out.storeBytes(of: Self.digit(flags & 0xF), toByteOffset: 54, as: UInt8.self)
    }

    /// Writes the version `00` form (55 bytes) at `out`, copying the trace id's 32 hex digits
    /// from `traceIDHex` (which must spell ``traceIDHigh`` and ``traceIDLow``), and the span id's
    /// from its last 16 when the span id is the trace id's low half (a root span the gateway
    /// started, ``ExchangeTrace``).
    @inlinable @inline(__always)
    public func write(to out: UnsafeMutableRawPointer, traceIDHex: UnsafeRawPointer) {
        // "00-", trace id, "-", span id, "-", flags.
        out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 0, as: UInt8.self)
        out.storeBytes(of: UInt8(ascii: "0"), toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 2, as: UInt8.self)
        (out + 3).copyMemory(from: traceIDHex, byteCount: 32)
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 35, as: UInt8.self)
        if spanID == traceIDLow {
            (out + 36).copyMemory(from: traceIDHex + 16, byteCount: 16)
        } else {
            Self.writeHex(spanID, to: out + 36)
        }
        out.storeBytes(of: UInt8(ascii: "-"), toByteOffset: 52, as: UInt8.self)
        out.storeBytes(of: Self.hexDigit(flags >> 4), toByteOffset: 53, as: UInt8.self)
        out.storeBytes(of: Self.hexDigit(flags & 0xF), toByteOffset: 54, as: UInt8.self)
    }

    /// The version `00` header value.
    public var headerValue: String {
        String(unsafeUninitializedCapacity: Self.length) { buf in
            write(to: UnsafeMutableRawPointer(buf.baseAddress!))
            return Self.length
        }
    }

    /// The trace id as 32 lower-case hex digits.
    public var traceIDHex: String { Self.hex(traceIDHigh) + Self.hex(traceIDLow) }

    /// The span id as 16 lower-case hex digits.
    public var spanIDHex: String { Self.hex(spanID) }

    // MARK: hex

    /// 16 lower-case hex digits of `value`.
    public static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buf in
            writeHex(value, to: UnsafeMutableRawPointer(buf.baseAddress!))
            return 16
        }
    }

    /// Writes the 16 lower-case hex digits of `value` at `out`, eight at a time.
    @inlinable @inline(__always)
    public static func writeHex(_ value: UInt64, to out: UnsafeMutableRawPointer) {
        out.storeBytes(of: hex8(value >> 32).bigEndian, as: UInt64.self)
        out.storeBytes(of: hex8(value & 0xFFFF_FFFF).bigEndian, toByteOffset: 8, as: UInt64.self)
    }

    /// The 8 lower-case hex digits of `x` (below 2³²) as the bytes of a word, the last digit in
    /// the lowest byte: each nibble spread into a byte of its own, then `0`-`9` or `a`-`f` added
    /// to all of them at once.
    @inlinable @inline(__always)
    static func hex8(_ x: UInt64) -> UInt64 {
        var n = (x | x << 16) & 0x0000_FFFF_0000_FFFF
        n = (n | n << 8) & 0x00FF_00FF_00FF_00FF
        n = (n | n << 4) & 0x0F0F_0F0F_0F0F_0F0F
        // 0x01 in every byte whose nibble is 10 or more.
        let letters = ((n &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return n &+ 0x3030_3030_3030_3030 &+ letters &* (UInt64(UInt8(ascii: "a")) - UInt64(UInt8(ascii: "0")) - 10)
    }

    @inline(__always)
    static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    @inlinable @inline(__always)
    static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") &+ nibble : UInt8(ascii: "a") &+ nibble &- 10
    }

    /// A lower-case hex digit's value (upper case is invalid in `traceparent`).
    @inline(__always)
    static func hexNibble(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    @inline(__always)
    static func hex64(_ raw: UnsafeRawBufferPointer, at start: Int) -> UInt64? {
        var v: UInt64 = 0
        for i in start..<start + 16 {
            guard let n = hexNibble(raw[i]) else { return nil }
            v = v << 4 | UInt64(n)
        }
        return v
    }
}
