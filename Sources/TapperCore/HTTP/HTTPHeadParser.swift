#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A strict, allocation-light HTTP/1.1 message-head parser over raw bytes, for the gateway's
/// raw-bytes data path (see the gateway issue: NIOHTTP1's decoder/encoder cost most of the CPU
/// per proxied request). It records offsets into the caller's buffer instead of copying strings.
///
/// It is deliberately stricter than RFC 9112 allows a server to be, because a proxy that accepts
/// what its upstream might read differently is a request-smuggling vector: bare LF, obs-fold,
/// whitespace before a colon, control bytes, `Transfer-Encoding` other than exactly `chunked`,
/// both `Content-Length` and `Transfer-Encoding`, or conflicting lengths are all refused.
public struct HTTPHeadParser: Sendable {
    public enum Kind: Sendable { case request, response }

    public struct Limits: Sendable, Hashable {
        /// Whole head (start line + headers + final CRLF).
        public var maxHeadBytes: Int
        /// Request target.
        public var maxTargetBytes: Int
        public var maxHeaderCount: Int

        public init(maxHeadBytes: Int = 32 * 1024, maxTargetBytes: Int = 8 * 1024, maxHeaderCount: Int = 200) {
            self.maxHeadBytes = maxHeadBytes
            self.maxTargetBytes = maxTargetBytes
            self.maxHeaderCount = maxHeaderCount
        }
    }

    /// How the body that follows the head is delimited.
    public enum Framing: Sendable, Hashable {
        case none
        case contentLength(Int64)
        case chunked
        /// Response only: the body runs until the connection closes.
        case untilClose
    }

    public struct Header: Sendable, Hashable {
        public var name: Range<Int>
        public var value: Range<Int>

        public init(name: Range<Int>, value: Range<Int>) {
            self.name = name
            self.value = value
        }
    }

    public struct Head: Sendable, Hashable {
        /// Request: the method; response: empty.
        public var method: Range<Int> = 0..<0
        /// Request: the target; response: empty.
        public var target: Range<Int> = 0..<0
        public var versionMinor = 1
        /// Response: the status code; request: 0.
        public var status = 0
        public var headers: [Header] = []
        /// Bytes of the whole head, including the empty line.
        public var length = 0
        public var framing: Framing = .none
        /// Whether the connection stays open after this message (HTTP/1.1 default, `Connection`).
        public var keepAlive = true
        /// `Expect: 100-continue` was sent.
        public var expectContinue = false
        /// `Connection` lists `upgrade` (any case, any position: Firefox sends `keep-alive, Upgrade`).
        public var connectionUpgrade = false
        /// The value of the `Upgrade` header (the last one, if repeated).
        public var upgrade: Range<Int>? = nil
    }

    public enum Failure: Error, Sendable, Hashable {
        /// The head is not complete yet; read more.
        case incomplete
        /// 400 with a reason.
        case malformed(String)
        /// 431.
        case headTooLarge
        /// 414.
        case targetTooLong
        /// 501: a transfer coding other than chunked.
        case unsupportedTransferEncoding
    }

    /// Empties `storage` and returns what it held, for ``parse(_:kind:limits:requestMethodWasHEAD:reusing:)``:
    /// passing `storage` itself would leave a second reference, and the parser would copy.
    public static func take(_ storage: inout [Header]) -> [Header] {
        var taken: [Header] = []
        swap(&taken, &storage)
        return taken
    }

    /// Parses a head at the start of `bytes`.
    /// - Parameters:
    ///   - requestMethodWasHEAD: for responses, whether the request was HEAD (no body then).
    ///   - storage: an array to keep the headers in (emptied first). A connection that hands back
    ///     the previous head's `headers`, no longer referenced elsewhere, parses without
    ///     allocating; otherwise a new array is made.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, kind: Kind, limits: Limits = .init(), requestMethodWasHEAD: Bool = false,
        reusing storage: consuming [Header] = []
    ) -> Result<Head, Failure> {
        // First find where the head ends: that separates "read more" from "too large" from
        // "malformed", and a bare LF is refused before anything else looks at the bytes.
        let scanLimit = min(bytes.count, limits.maxHeadBytes)
        var end = -1
        var firstLineEnd = -1
        var i = 0
        // Line by line: memchr finds each LF (a head is a dozen lines of a few dozen bytes).
        while i < scanLimit, let base = bytes.baseAddress {
            guard let found = memchr(base + i, Int32(UInt8(ascii: "\n")), scanLimit - i) else { break }
            i = UnsafeRawPointer(found) - base
            guard i > 0, bytes[i - 1] == UInt8(ascii: "\r") else { return .failure(.malformed("bare LF in the message head")) }
            if firstLineEnd < 0 { firstLineEnd = i }
            if i >= 3 && bytes[i - 2] == UInt8(ascii: "\n") && bytes[i - 3] == UInt8(ascii: "\r") {
                end = i + 1
                break
            }
            i += 1
        }
        if end < 0 {
            let lineSoFar = firstLineEnd < 0 ? scanLimit : firstLineEnd
            if kind == .request && lineSoFar > limits.maxTargetBytes + 64 { return .failure(.targetTooLong) }
            return .failure(bytes.count >= limits.maxHeadBytes ? .headTooLarge : .incomplete)
        }
        var p = Cursor(bytes: bytes, limit: end)
        var head = Head()
        head.headers = consume storage
        head.headers.removeAll(keepingCapacity: true)
        // One allocation for a typical head instead of growing 1, 2, 4, 8, 16.
        if head.headers.capacity < 16 { head.headers.reserveCapacity(16) }
        // Start line.
        switch kind {
        case .request:
            guard let method = p.token(), p.consume(UInt8(ascii: " ")) else { return p.fail("invalid request line") }
            head.method = method
            let targetStart = p.index
            while let b = p.peek(), b != UInt8(ascii: " ") {
                guard b > 0x20 && b < 0x7F else {
                    return b == UInt8(ascii: "\r") || b == UInt8(ascii: "\n") ? p.fail("invalid request line") : .failure(.malformed("invalid character in the request target"))
                }
                p.index += 1
                if p.index - targetStart > limits.maxTargetBytes { return .failure(.targetTooLong) }
            }
            head.target = targetStart..<p.index
            guard !head.target.isEmpty, p.consume(UInt8(ascii: " ")) else { return p.fail("invalid request line") }
            guard let minor = p.version(), p.crlf() else { return p.fail("invalid HTTP version in the request line") }
            head.versionMinor = minor
        case .response:
            guard let minor = p.version(), p.consume(UInt8(ascii: " ")) else { return p.fail("invalid status line") }
            head.versionMinor = minor
            var status = 0
            for _ in 0..<3 {
                guard let b = p.peek(), b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return p.fail("invalid status code") }
                status = status * 10 + Int(b - UInt8(ascii: "0"))
                p.index += 1
            }
            head.status = status
            // Reason phrase: anything printable (or tab) up to CRLF.
            if p.peek() == UInt8(ascii: " ") {
                p.index += 1
                while let b = p.peek(), b != UInt8(ascii: "\r") {
                    guard b == 0x09 || (b >= 0x20 && b != 0x7F) else { return p.fail("invalid reason phrase") }
                    p.index += 1
                }
            }
            guard p.crlf() else { return p.fail("invalid status line") }
        }
        head.keepAlive = head.versionMinor >= 1
        // Header fields.
        var contentLength: Int64? = nil
        var transferEncoding = false
        var sawConnectionClose = false
        var sawConnectionKeepAlive = false
        while true {
            if p.crlf() { break }
            if p.atEnd { return p.fail("incomplete head") }
            if let b = p.peek(), b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") {
                return .failure(.malformed("obsolete line folding is not accepted"))
            }
            guard let name = p.token() else { return p.fail("invalid header name") }
            guard p.consume(UInt8(ascii: ":")) else { return p.fail("invalid header line (no colon right after the name)") }
            while let b = p.peek(), b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") { p.index += 1 }
            let valueStart = p.index
            // The value runs to the next CR (the LF scan above made sure each LF follows a CR,
            // so no LF comes first); its bytes are checked 8 at a time, then trailing blanks
            // are trimmed.
            let lineEnd = p.find(UInt8(ascii: "\r"))
            guard HTTPHeadParser.isFieldValue(bytes, valueStart..<lineEnd) else {
                return .failure(.malformed("control character in a header value"))
            }
            p.index = lineEnd
            var valueEnd = lineEnd
            while valueEnd > valueStart && (bytes[valueEnd - 1] == UInt8(ascii: " ") || bytes[valueEnd - 1] == UInt8(ascii: "\t")) { valueEnd -= 1 }
            guard p.crlf() else { return p.fail("invalid header line") }
            guard head.headers.count < limits.maxHeaderCount else { return .failure(.headTooLarge) }
            let header = Header(name: name, value: valueStart..<valueEnd)
            head.headers.append(header)
            if bytes.equalsIgnoringCase(name, "content-length") {
                guard let n = bytes.decimal(header.value) else { return .failure(.malformed("invalid Content-Length")) }
                if let previous = contentLength, previous != n { return .failure(.malformed("conflicting Content-Length headers")) }
                contentLength = n
            } else if bytes.equalsIgnoringCase(name, "transfer-encoding") {
                guard !transferEncoding else { return .failure(.malformed("repeated Transfer-Encoding")) }
                guard bytes.equalsIgnoringCase(header.value, "chunked") else { return .failure(.unsupportedTransferEncoding) }
                transferEncoding = true
            } else if bytes.equalsIgnoringCase(name, "connection") {
                bytes.forEachToken(in: header.value) { token in
                    if bytes.equalsIgnoringCase(token, "close") { sawConnectionClose = true }
                    if bytes.equalsIgnoringCase(token, "keep-alive") { sawConnectionKeepAlive = true }
                    if bytes.equalsIgnoringCase(token, "upgrade") { head.connectionUpgrade = true }
                }
            } else if bytes.equalsIgnoringCase(name, "upgrade") {
                head.upgrade = header.value
            } else if kind == .request && bytes.equalsIgnoringCase(name, "expect") {
                head.expectContinue = bytes.equalsIgnoringCase(header.value, "100-continue")
            }
        }
        head.length = p.index
        if transferEncoding && contentLength != nil {
            return .failure(.malformed("a message must not carry both Content-Length and Transfer-Encoding"))
        }
        if transferEncoding && head.versionMinor == 0 {
            return .failure(.malformed("Transfer-Encoding is not allowed in HTTP/1.0"))
        }
        if sawConnectionClose { head.keepAlive = false } else if sawConnectionKeepAlive { head.keepAlive = true }
        // Framing (RFC 9112 §6.3).
        switch kind {
        case .request:
            head.framing = transferEncoding ? .chunked : (contentLength.map { $0 > 0 ? .contentLength($0) : .none } ?? .none)
        case .response:
            if requestMethodWasHEAD || head.status / 100 == 1 || head.status == 204 || head.status == 304 {
                head.framing = .none
            } else if transferEncoding {
                head.framing = .chunked
            } else if let contentLength {
                head.framing = contentLength > 0 ? .contentLength(contentLength) : .none
            } else {
                head.framing = .untilClose
                head.keepAlive = false
            }
        }
        return .success(head)
    }

    /// Whether `range` of `bytes` is a valid field value: HTAB, SP, visible ASCII or obs-text
    /// (no other control byte, no DEL).
    @inline(__always)
    static func isFieldValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        let end = range.upperBound
        while i + 8 <= end {
            let x = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            // Any byte below 0x20 (SWAR "has less than"), or any byte equal to 0x7F.
            let low = (x &- 0x2020_2020_2020_2020) & ~x & 0x8080_8080_8080_8080
            let y = x ^ 0x7F7F_7F7F_7F7F_7F7F
            let del = (y &- 0x0101_0101_0101_0101) & ~y & 0x8080_8080_8080_8080
            if low | del != 0 {
                // A tab, or a byte to refuse: decide byte by byte.
                for j in i..<i + 8 where !isFieldValueByte(bytes[j]) { return false }
            }
            i += 8
        }
        while i < end {
            if !isFieldValueByte(bytes[i]) { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }

    /// RFC 9110 `tchar` as two bit masks over 0..<128 (same set as ``TextRules/isTokenCharacter(_:)``).
    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        guard b < 128 else { return false }
        let mask: UInt64 = b < 64 ? 0x03ff_6cfa_0000_0000 : 0x57ff_ffff_c7ff_fffe
        return (mask >> UInt64(b & 63)) & 1 != 0
    }

    /// A read position with bounds checks that turn "ran out of bytes" into `.incomplete`.
    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        let limit: Int
        var index = 0

        init(bytes: UnsafeRawBufferPointer, limit: Int) {
            self.bytes = bytes
            self.limit = limit
        }

        var atEnd: Bool { index >= limit }

        func peek() -> UInt8? { index < limit ? bytes[index] : nil }

        mutating func consume(_ b: UInt8) -> Bool {
            guard peek() == b else { return false }
            index += 1
            return true
        }

        /// CRLF, or nothing (a bare LF is not a line end).
        mutating func crlf() -> Bool {
            guard index + 1 < limit, bytes[index] == UInt8(ascii: "\r"), bytes[index + 1] == UInt8(ascii: "\n") else { return false }
            index += 2
            return true
        }

        /// The index of the next `byte` at or after ``index``, or ``limit``.
        func find(_ byte: UInt8) -> Int {
            guard index < limit, let base = bytes.baseAddress, let found = memchr(base + index, Int32(byte), limit - index) else { return limit }
            return UnsafeRawPointer(found) - base
        }

        mutating func token() -> Range<Int>? {
            let start = index
            while index < limit, HTTPHeadParser.isTokenByte(bytes[index]) { index += 1 }
            return index > start ? start..<index : nil
        }

        /// `HTTP/1.0` or `HTTP/1.1`; returns the minor version.
        mutating func version() -> Int? {
            let expected: StaticString = "HTTP/1."
            guard index + 8 <= limit else { return nil }
            for i in 0..<7 where bytes[index + i] != expected.utf8Start[i] { return nil }
            let minor = bytes[index + 7]
            guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { return nil }
            index += 8
            return Int(minor - UInt8(ascii: "0"))
        }

        /// The head's end is known before parsing starts, so any failure here is malformed input.
        func fail(_ reason: String) -> Result<Head, Failure> {
            .failure(.malformed(reason))
        }
    }
}

extension UnsafeRawBufferPointer {
    /// ASCII case-insensitive comparison of a range with a lower-case literal.
    @inlinable @inline(__always)
    public func equalsIgnoringCase(_ range: Range<Int>, _ lower: StaticString) -> Bool {
        guard range.count == lower.utf8CodeUnitCount else { return false }
        let l = lower.utf8Start
        for i in 0..<range.count {
            var b = self[range.lowerBound + i]
            if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") { b |= 0x20 }
            if b != l[i] { return false }
        }
        return true
    }

    /// A non-negative decimal number (at most 18 digits) in `range`.
    func decimal(_ range: Range<Int>) -> Int64? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var v: Int64 = 0
        for i in range {
            let b = self[i]
            guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + Int64(b - UInt8(ascii: "0"))
        }
        return v
    }

    /// Calls `body` with each comma-separated token of `range`, trimmed.
    public func forEachToken(in range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        var i = range.lowerBound
        func emit(_ s: Int, _ e: Int) {
            var a = s
            var b = e
            while a < b && (self[a] == UInt8(ascii: " ") || self[a] == UInt8(ascii: "\t")) { a += 1 }
            while b > a && (self[b - 1] == UInt8(ascii: " ") || self[b - 1] == UInt8(ascii: "\t")) { b -= 1 }
            if b > a { body(a..<b) }
        }
        while i < range.upperBound {
            if self[i] == UInt8(ascii: ",") {
                emit(start, i)
                start = i + 1
            }
            i += 1
        }
        emit(start, range.upperBound)
    }
}
