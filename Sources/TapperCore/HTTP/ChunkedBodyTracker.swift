/// Follows a chunked body byte by byte without copying it, so a proxy can forward the raw
/// bytes and still know exactly where the message ends (and refuse malformed framing, a
/// smuggling vector). Chunk extensions are skipped; trailers are passed over and must be
/// well-formed header lines.
public struct ChunkedBodyTracker: Sendable, Hashable {
    enum State: Sendable, Hashable {
        case size(value: UInt64, digits: Int)
        case extensions
        case sizeLF
        case data(remaining: UInt64)
        case dataCR
        case dataLF
        case trailerLineStart
        case trailerName
        case trailerLine
        case trailerLF
        case finalLF
        case done
    }

    public enum Failure: Error, Sendable, Hashable {
        case malformed(String)
        case chunkTooLarge
    }

    var state: State = .size(value: 0, digits: 0)
    /// Body payload bytes seen so far (not counting framing).
    public private(set) var payloadBytes: UInt64 = 0

    public init() {}

    public var isComplete: Bool { state == .done }

    /// Consumes bytes; returns how many belong to this message (the rest, if any, starts the
    /// next message on the connection).
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Int {
        try consume(bytes) { _ in }
    }

    /// Consumes bytes like ``consume(_:)`` and reports where the chunk payload lies in `bytes`
    /// (for a proxy that has to remove the chunked framing, e.g. towards an HTTP/1.0 client).
    /// - Parameter payload: called with each range of `bytes` that is body payload, in order.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void) throws(Failure) -> Int {
        try consume(bytes, payload: payload, trailer: { _ in })
    }

    /// Like ``consume(_:payload:)``, and reports the bytes of the trailer section too (each
    /// trailer line with its CRLF, in order; not the final empty line), for a proxy that has to
    /// carry trailers over to another protocol (HTTP/2's trailing HEADERS).
    @inline(__always)
    public mutating func consume(_ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void, trailer: (Range<Int>) -> Void) throws(Failure) -> Int {
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            switch state {
            case .done:
                return i
            case .size(let value, let digits):
                if let h = PercentDecoding.hex(b) {
                    guard digits < 15 else { throw .chunkTooLarge }
                    state = .size(value: value << 4 | UInt64(h), digits: digits + 1)
                } else if digits > 0 && (b == UInt8(ascii: ";") || b == UInt8(ascii: " ") || b == UInt8(ascii: "\t")) {
                    state = .extensions
                    pendingSize = value
                } else if digits > 0 && b == UInt8(ascii: "\r") {
                    pendingSize = value
                    state = .sizeLF
                } else {
                    throw .malformed("invalid chunk size")
                }
            case .extensions:
                if b == UInt8(ascii: "\r") {
                    state = .sizeLF
                } else if b == UInt8(ascii: "\n") || b < 0x09 || (b > 0x09 && b < 0x20) || b == 0x7F {
                    throw .malformed("invalid chunk extension")
                }
            case .sizeLF:
                guard b == UInt8(ascii: "\n") else { throw .malformed("chunk size line must end with CRLF") }
                state = pendingSize == 0 ? .trailerLineStart : .data(remaining: pendingSize)
            case .data(let remaining):
                let n = UInt64(min(UInt64(bytes.count - i), remaining))
                payloadBytes += n
                if n > 0 { payload(i..<i + Int(n)) }
                i += Int(n)
                state = remaining == n ? .dataCR : .data(remaining: remaining - n)
                continue
            case .dataCR:
                guard b == UInt8(ascii: "\r") else { throw .malformed("chunk data must end with CRLF") }
                state = .dataLF
            case .dataLF:
                guard b == UInt8(ascii: "\n") else { throw .malformed("chunk data must end with CRLF") }
                state = .size(value: 0, digits: 0)
            case .trailerLineStart:
                if b == UInt8(ascii: "\r") {
                    state = .finalLF
                } else if TextRules.isTokenCharacter(b) {
                    trailer(i..<i + 1)
                    state = .trailerName
                } else {
                    throw .malformed("invalid trailer")
                }
            case .trailerName:
                trailer(i..<i + 1)
                if b == UInt8(ascii: ":") {
                    state = .trailerLine
                } else if !TextRules.isTokenCharacter(b) {
                    throw .malformed("invalid trailer field name")
                }
            case .trailerLine:
                trailer(i..<i + 1)
                if b == UInt8(ascii: "\r") {
                    state = .trailerLF
                } else if b == UInt8(ascii: "\n") || (b < 0x20 && b != 0x09) || b == 0x7F {
                    throw .malformed("invalid trailer")
                }
            case .trailerLF:
                guard b == UInt8(ascii: "\n") else { throw .malformed("trailer lines must end with CRLF") }
                trailer(i..<i + 1)
                state = .trailerLineStart
            case .finalLF:
                guard b == UInt8(ascii: "\n") else { throw .malformed("chunked body must end with CRLF") }
                state = .done
                return i + 1
            }
            i += 1
        }
        return i
    }

    var pendingSize: UInt64 = 0
}
