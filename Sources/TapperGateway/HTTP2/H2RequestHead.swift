#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore

/// The header fields of one HTTP/2 request as they arrive (nghttp2 has checked them: pseudo
/// headers present and in place, lowercase names, no connection-specific fields, valid
/// characters), and the HTTP/1.1 head that carries the same request through the gateway's
/// proxy machine: routing, auth, limits, balancing and retries see exactly what an HTTP/1.1
/// client would have sent.
struct H2RequestHead {
    var method: [UInt8] = []
    var path: [UInt8] = []
    var authority: [UInt8] = []
    /// Regular fields in arrival order (cookies apart: they are joined into one, RFC 9113 8.2.3).
    var fields: [(name: [UInt8], value: [UInt8])] = []
    var cookies: [[UInt8]] = []
    var hasContentLength = false
    var hasHost = false
    /// The header list size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (name + value + 32 each).
    private(set) var listSize = 0
    /// The list went over `limit`: the request is answered 431, not proxied.
    private(set) var tooLarge = false
    /// A field the HTTP/1.1 head could not carry safely (CR, LF or NUL in it).
    private(set) var invalid = false

    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        listSize += name.count + value.count + 32
        if listSize > limit { tooLarge = true }
        if tooLarge || invalid { return }
        for byte in value where byte == 0x0D || byte == 0x0A || byte == 0 {
            invalid = true
            return
        }
        if name.first == UInt8(ascii: ":") {
            switch String(decoding: name, as: UTF8.self) {
            case ":method": method = Array(value)
            case ":path": path = Array(value)
            case ":authority": authority = Array(value)
            default: break  // :scheme: the gateway's own listener says what it was.
            }
            return
        }
        if Self.equals(name, "cookie") {
            cookies.append(Array(value))
            return
        }
        // `te: trailers` is the only TE HTTP/2 allows; it is hop-by-hop in HTTP/1.1.
        if Self.equals(name, "te") { return }
        if Self.equals(name, "content-length") { hasContentLength = true }
        if Self.equals(name, "host") { hasHost = true }
        fields.append((Array(name), Array(value)))
    }

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ string: StaticString) -> Bool {
        bytes.count == string.utf8CodeUnitCount && memcmp(bytes.baseAddress!, string.utf8Start, bytes.count) == 0
    }

    /// Methods whose requests mean "no body" when none is sent (the others get `Content-Length: 0`).
    private static let bodylessMethods = ["GET", "HEAD", "DELETE", "OPTIONS", "TRACE"].map { Array($0.utf8) }
    private static let headMethod = Array("HEAD".utf8)
    private static let contentLength = Array("content-length".utf8)

    var isHEAD: Bool { method == Self.headMethod }

    /// How the body follows the HTTP/1.1 head.
    enum BodyFraming: Equatable {
        /// No body: the stream ended with its headers.
        case none
        /// The client's `content-length` (nghttp2 checks the DATA frames against it).
        case contentLength
        /// DATA frames of a request without a length, sent as chunks.
        case chunked
    }

    func framing(endStream: Bool) -> BodyFraming {
        if endStream { return .none }
        return hasContentLength ? .contentLength : .chunked
    }

    /// The HTTP/1.1 head: `Connection: close` makes the proxy machine end the virtual connection
    /// (and with it the stream) after one response; the upstream connection stays pooled.
    /// nil when the request has no method or path (CONNECT and the like).
    func http1(framing: BodyFraming) -> ByteBuffer? {
        guard !method.isEmpty, !path.isEmpty else { return nil }
        var out = ByteBuffer()
        out.reserveCapacity(listSize + 64)
        out.writeBytes(method)
        out.writeStaticString(" ")
        out.writeBytes(path)
        out.writeStaticString(" HTTP/1.1\r\n")
        if !authority.isEmpty && !hasHost {
            out.writeStaticString("Host: ")
            out.writeBytes(authority)
            out.writeStaticString("\r\n")
        }
        for field in fields {
            if framing == .none && field.name == Self.contentLength { continue }
            out.writeBytes(field.name)
            out.writeStaticString(": ")
            out.writeBytes(field.value)
            out.writeStaticString("\r\n")
        }
        if !cookies.isEmpty {
            out.writeStaticString("cookie: ")
            for (i, cookie) in cookies.enumerated() {
                if i > 0 { out.writeStaticString("; ") }
                out.writeBytes(cookie)
            }
            out.writeStaticString("\r\n")
        }
        switch framing {
        case .none: if !Self.bodylessMethods.contains(method) { out.writeStaticString("Content-Length: 0\r\n") }
        case .contentLength: break
        case .chunked: out.writeStaticString("Transfer-Encoding: chunked\r\n")
        }
        out.writeStaticString("Connection: close\r\n\r\n")
        return out
    }
}
