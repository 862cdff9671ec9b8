#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One finished gateway span as the I/O thread records it: ids, times and counts as integers,
/// the request's path, and references to what many spans share (their route's, instance's and
/// `Host`'s strings, encoded once as OTLP span fields), so recording a span formats nothing and
/// copies no string.
public struct SpanRecord: Sendable {
    /// The trace id, this span's id and the flags sent upstream.
    public var context: TraceParent
    /// The caller's span id (0: this span is the trace's root).
    public var parentSpanID: UInt64
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64
    /// Method, route template and service: the span's name and their attributes.
    public var route: SpanRoute
    /// The request's `Host` (`server.address`, `server.port`); nil when absent.
    public var host: SpanHost?
    /// The instance of the last attempt, if one was picked.
    public var instance: SpanInstance?
    /// The path requested (`url.path`).
    public var path: String
    /// `http.response.status_code` (0: no response).
    public var status: Int32
    /// Attempts beyond the first.
    public var retries: Int32
    /// How the exchange ended (`ok`, or an error code such as `upstream_timeout`).
    public var outcome: String

    @inlinable
    public init(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, route: SpanRoute, host: SpanHost?,
        instance: SpanInstance?, path: String, status: Int, outcome: String, retries: Int
    ) {
        self.context = context
        self.parentSpanID = parentSpanID
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.route = route
        self.host = host
        self.instance = instance
        self.path = path
        self.status = Int32(clamping: status)
        self.retries = Int32(clamping: max(0, retries))
        self.outcome = outcome
    }

    /// The span's name: method and route template, e.g. `GET /users/{user_id}`.
    public var name: String { route.method + " " + route.template }

    /// A server span is an error when the gateway answered 5xx or the exchange did not end
    /// well (OpenTelemetry HTTP semantic conventions: 4xx is the client's error, not the
    /// server span's).
    public var isError: Bool { status >= 500 || status == 0 || outcome != "ok" }
}

/// What the spans of one route and method share: the span name (`GET /users/{user_id}`) and the
/// `http.request.method`, `http.route` and `tapper.service` attributes, encoded once (the
/// gateway keeps one per route-table entry and method on each I/O thread).
public final class SpanRoute: Sendable {
    public let method: String
    public let template: String
    public let service: String
    /// Span fields 5 (name) and 9 (those attributes), as OTLP protobuf.
    let encoded: [UInt8]

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
    let encoded: [UInt8]

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
    private let bytes: [UInt8]
    public let address: String
    public let port: Int?
    let encoded: [UInt8]

    public init(_ value: String) {
        self.value = value
        bytes = Array(value.utf8)
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
    public func matches(_ other: UnsafeRawBufferPointer) -> Bool {
        bytes.withUnsafeBytes { own in
            own.count == other.count && (own.isEmpty || memcmp(own.baseAddress!, other.baseAddress!, own.count) == 0)
        }
    }
}
