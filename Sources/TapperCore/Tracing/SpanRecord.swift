#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One finished gateway span as the I/O thread records it: a plain value (ids, times, counts,
/// where its strings are in its ``SpanChunk``'s bytes, and unretained references to what many
/// spans share, which the chunk keeps alive), so recording, queueing and dropping one retains,
/// releases and formats nothing.
public struct SpanRecord: @unchecked Sendable, BitwiseCopyable {
    /// The trace id, this span's id and the flags sent upstream.
    public var context: TraceParent
    /// The caller's span id (0: this span is the trace's root).
    public var parentSpanID: UInt64
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64
    /// `http.response.status_code` (0: no response).
    public var status: Int32
    /// Attempts beyond the first.
    public var retries: Int32
    /// The path requested (`url.path`) and, when the exchange failed, its outcome (an error
    /// code such as `upstream_timeout`): where their UTF-8 is in the chunk's bytes.
    @usableFromInline var path: Slice
    @usableFromInline var outcome: Slice
    /// The exchange's outcome was not `ok`.
    public var failed: Bool
    /// Method, route template and service: the span's name and their attributes.
    @usableFromInline var route: Unmanaged<SpanRoute>
    /// The request's `Host` (`server.address`, `server.port`).
    @usableFromInline var host: Unmanaged<SpanHost>?
    /// The instance of the last attempt.
    @usableFromInline var instance: Unmanaged<SpanInstance>?
    // (Sendable: the references are to immutable, Sendable objects.)

    /// Where a string is in a chunk's bytes.
    @usableFromInline struct Slice: Sendable, BitwiseCopyable {
        @usableFromInline var offset: UInt32
        @usableFromInline var count: UInt32

        @inlinable init(offset: UInt32, count: UInt32) {
            self.offset = offset
            self.count = count
        }
    }

    @inlinable init(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, status: Int32, retries: Int32, path: Slice,
        outcome: Slice, failed: Bool, route: Unmanaged<SpanRoute>, host: Unmanaged<SpanHost>?, instance: Unmanaged<SpanInstance>?
    ) {
        self.context = context
        self.parentSpanID = parentSpanID
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.status = status
        self.retries = retries
        self.path = path
        self.outcome = outcome
        self.failed = failed
        self.route = route
        self.host = host
        self.instance = instance
    }

    /// A server span is an error when the gateway answered 5xx or the exchange did not end
    /// well (OpenTelemetry HTTP semantic conventions: 4xx is the client's error, not the
    /// server span's).
    public var isError: Bool { status >= 500 || status == 0 || failed }
}

/// Spans recorded together, as an I/O thread hands them to the exporter: the records, the
/// bytes of their paths and outcomes, and strong references to the shared fields they point to.
///
/// Built by one owner, then handed over and only read: copies share the bytes, so a copy is
/// not appended to (``append`` copies the bytes first if it is).
public struct SpanChunk: Sendable {
    @usableFromInline var storage: [SpanRecord] = []
    public var records: [SpanRecord] { storage }
    /// The records' paths and outcomes.
    @usableFromInline var bytes: SpanBytes
    /// What the records' unretained references point to.
    @usableFromInline var keep: [any AnyObject & Sendable] = []
    /// The last of each kind kept (consecutive spans mostly share them).
    @usableFromInline var lastRoute: ObjectIdentifier?
    @usableFromInline var lastHost: ObjectIdentifier?
    @usableFromInline var lastInstance: ObjectIdentifier?

    public init(capacity: Int = 0) {
        bytes = SpanBytes(capacity: capacity * 16)
        storage.reserveCapacity(capacity)
        keep.reserveCapacity(capacity > 0 ? 4 : 0)
    }

    @inlinable public var count: Int { storage.count }
    @inlinable public var isEmpty: Bool { storage.isEmpty }

    /// Records a span (inlined into the I/O thread's code: a call would retain its arguments).
    @inlinable
    public mutating func append(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, route: SpanRoute, host: SpanHost?,
        instance: SpanInstance?, path: String, status: Int, outcome: String, retries: Int
    ) {
        let failed = outcome != "ok"
        if !isKnownUniquelyReferenced(&bytes) { bytes = bytes.copy() }
        let pathSlice = bytes.append(path)
        let outcomeSlice = failed ? bytes.append(outcome) : SpanRecord.Slice(offset: 0, count: 0)
        if ObjectIdentifier(route) != lastRoute {
            keep.append(route)
            lastRoute = ObjectIdentifier(route)
        }
        if let host, ObjectIdentifier(host) != lastHost {
            keep.append(host)
            lastHost = ObjectIdentifier(host)
        }
        if let instance, ObjectIdentifier(instance) != lastInstance {
            keep.append(instance)
            lastInstance = ObjectIdentifier(instance)
        }
        storage.append(
            SpanRecord(
                context: context, parentSpanID: parentSpanID, startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos,
                status: Int32(clamping: status), retries: Int32(clamping: max(0, retries)), path: pathSlice, outcome: outcomeSlice, failed: failed,
                route: .passUnretained(route), host: host.map { .passUnretained($0) }, instance: instance.map { .passUnretained($0) }))
    }

    /// The first `n` records and the rest, as two chunks (sharing the bytes and references).
    public func split(at n: Int) -> (SpanChunk, SpanChunk) {
        var first = self
        var rest = self
        first.storage = Array(storage.prefix(n))
        rest.storage = Array(storage.dropFirst(n))
        return (first, rest)
    }

    // MARK: reading (the encoder, tests)

    public func path(_ record: SpanRecord) -> String { bytes.string(record.path) }
    public func outcome(_ record: SpanRecord) -> String { record.failed ? bytes.string(record.outcome) : "ok" }
    public func route(_ record: SpanRecord) -> SpanRoute { record.route.takeUnretainedValue() }
    public func host(_ record: SpanRecord) -> SpanHost? { record.host?.takeUnretainedValue() }
    public func instance(_ record: SpanRecord) -> SpanInstance? { record.instance?.takeUnretainedValue() }
    /// The span's name: method and route template, e.g. `GET /users/{user_id}`.
    public func name(_ record: SpanRecord) -> String { route(record).method + " " + route(record).template }
}

extension SpanChunk: SpanBatchChunk {}

/// A chunk's string bytes: a growable buffer written through a pointer (a string is copied in
/// with one call, which an array of bytes could not do as cheaply), read-only once handed over.
@usableFromInline
final class SpanBytes: @unchecked Sendable {
    @usableFromInline private(set) var base: UnsafeMutablePointer<UInt8>
    @usableFromInline private(set) var count = 0
    @usableFromInline private(set) var capacity: Int

    @usableFromInline init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @usableFromInline func copy() -> SpanBytes {
        let c = SpanBytes(capacity: capacity)
        c.base.update(from: base, count: count)
        c.count = count
        return c
    }

    /// Copies in the UTF-8 of `s`.
    @inlinable func append(_ s: String) -> SpanRecord.Slice {
        let n = s.utf8.count
        if count + n > capacity { grow(to: count + n) }
        let (_, written) = s.utf8._copyContents(initializing: UnsafeMutableBufferPointer(start: base + count, count: n))
        let slice = SpanRecord.Slice(offset: UInt32(truncatingIfNeeded: count), count: UInt32(truncatingIfNeeded: written))
        count += written
        return slice
    }

    @usableFromInline @inline(never) func grow(to needed: Int) {
        let bigger = max(capacity * 2, needed)
        let new = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        new.update(from: base, count: count)
        base.deallocate()
        base = new
        capacity = bigger
    }

    func string(_ slice: SpanRecord.Slice) -> String {
        String(decoding: UnsafeBufferPointer(start: base + Int(slice.offset), count: Int(slice.count)), as: UTF8.self)
    }
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
    @usableFromInline let bytes: [UInt8]
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
    @inlinable
    public func matches(_ other: UnsafeRawBufferPointer) -> Bool {
        bytes.withUnsafeBytes { own in
            own.count == other.count && (own.isEmpty || memcmp(own.baseAddress!, other.baseAddress!, own.count) == 0)
        }
    }
}
