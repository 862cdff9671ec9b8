#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What the spans of one route and method share: the span name (`GET /users/{user_id}`) and the
/// `http.request.method`, `http.route` and `tapper.service` attributes, encoded once (the
/// gateway keeps one per route-table entry and method on each I/O thread).
public final class SpanRoute: Sendable {
    public let method: String
    public let template: String
    public let service: String
    /// Span fields 5 (name) and 9 (those attributes), as OTLP protobuf.
    public let encoded: [UInt8]

    public init(method: String, template: String, service: String) {
        self.method = method
        self.template = template
        self.service = service
        encoded = ProtobufWriter.encode(bound: 256 + 2 * (method.utf8.count + template.utf8.count) + service.utf8.count) { w in
            let name = method.utf8.count + 1 + template.utf8.count
            w.byte(OTLPProtobufEncoder.Tag.spanName)
            w.varint(UInt64(name))
            w.bytes(of: method)
            w.byte(UInt8(ascii: " "))
            w.bytes(of: template)
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "http.request.method", string: method)
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "http.route", string: template)
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "tapper.service", string: service)
        }
    }
}

/// An instance's `tapper.instance` and `tapper.instance.url` attributes, encoded once (the
/// gateway keeps one with each upstream target).
public final class SpanInstance: Sendable {
    public let id: String
    public let url: String
    public let encoded: [UInt8]

    public init(id: String, url: String) {
        self.id = id
        self.url = url
        encoded = ProtobufWriter.encode(bound: 256 + id.utf8.count + url.utf8.count) { w in
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "tapper.instance", string: id)
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "tapper.instance.url", string: url)
        }
    }
}

/// A request `Host` value's `server.address` and `server.port` attributes, encoded once (the
/// gateway's I/O threads reuse the last one while requests keep naming the same host).
public final class SpanHost: Sendable {
    /// The header value, e.g. `example.com:8080`.
    public let value: String
    /// Its bytes, to compare with a request's.
    @usableFromInline let bytes: [UInt8]
    /// Its first and last 8 bytes (when it has 8 or more): most `Host` values (`name:port`)
    /// are 8 to 16 bytes, compared as two words each.
    @usableFromInline let head8: UInt64
    @usableFromInline let tail8: UInt64
    public let address: String
    public let port: Int?
    public let encoded: [UInt8]

    public init(_ value: String) {
        self.value = value
        let bytes = Array(value.utf8)
        self.bytes = bytes
        (head8, tail8) = bytes.withUnsafeBytes { raw in
            raw.count >= 8 ? (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: raw.count - 8, as: UInt64.self)) : (0, 0)
        }
        (address, port) = Self.split(value)
        let address = self.address
        let port = self.port
        encoded = ProtobufWriter.encode(bound: 256 + address.utf8.count) { w in
            w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "server.address", string: address)
            if let port { w.attribute(OTLPProtobufEncoder.Tag.spanAttribute, key: "server.port", int: Int64(port)) }
        }
    }

    /// `host[:port]` from a `Host` value (IPv6 literals keep their brackets off).
    public static func split(_ host: String) -> (String, Int?) {
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return (host, nil) }
            let address = String(host[host.index(after: host.startIndex)..<close])
            let rest = host[host.index(after: close)...]
            return (address, rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil)
        }
        guard let colon = host.lastIndex(of: ":") else { return (host, nil) }
        return (String(host[..<colon]), Int(host[host.index(after: colon)...]))
    }

    /// Whether this is the value `bytes` spell (no string is made to find out).
    @inlinable @inline(__always)
    public func matches(_ other: UnsafeRawBufferPointer) -> Bool {
        let n = other.count
        guard n == bytes.count else { return false }
        if n >= 8 {
            guard other.loadUnaligned(as: UInt64.self) == head8, other.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) == tail8 else {
                return false
            }
            if n <= 16 { return true }
        }
        return matchesByteForByte(other)
    }

    @usableFromInline func matchesByteForByte(_ other: UnsafeRawBufferPointer) -> Bool {
        bytes.withUnsafeBytes { own in
            own.count == other.count && (own.isEmpty || memcmp(own.baseAddress!, other.baseAddress!, own.count) == 0)
        }
    }
}
