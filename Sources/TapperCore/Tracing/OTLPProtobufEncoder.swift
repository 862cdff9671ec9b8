#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Encodes spans as an OTLP/HTTP protobuf `ExportTraceServiceRequest` (the body of
/// `POST /v1/traces` with `Content-Type: application/x-protobuf`, OTLP/HTTP's default encoding),
/// by hand: each span as the I/O thread records it (``SpanWriter``, into its loop's chunk of
/// spans), and the request's header around the spans (``requestPrefix(spansByteCount:)``).
///
/// The messages written (opentelemetry-proto `collector/trace/v1`, `trace/v1`, `common/v1`,
/// `resource/v1`): one `ResourceSpans` (resource attribute `service.name`), one `ScopeSpans`
/// (scope `tapper` and its version), and per span a SERVER `Span` with its ids (bytes, trace id
/// big-endian high half first), name, times (`fixed64`), attributes and, when it failed, a
/// `Status` with code ERROR. What every span of a route, an instance or a `Host` shares comes
/// pre-encoded (``SpanRoute``, ``SpanInstance``, ``SpanHost``) and is copied in as it is;
/// protobuf lets a message's fields, and a repeated field's elements, come in any order.
public struct OTLPProtobufEncoder: Sendable {
    /// Field tags (field number << 3 | wire type) of the messages written (computed, so that
    /// the I/O thread's inlined span writing has them as constants).
    @usableFromInline enum Tag {
        // ExportTraceServiceRequest.resource_spans = 1; ResourceSpans.resource = 1, .scope_spans = 2.
        @inlinable static var resourceSpans: UInt8 { 0x0A }
        @inlinable static var resource: UInt8 { 0x0A }
        @inlinable static var scopeSpans: UInt8 { 0x12 }
        // Resource.attributes = 1; ScopeSpans.scope = 1, .spans = 2; InstrumentationScope.name = 1, .version = 2.
        @inlinable static var resourceAttribute: UInt8 { 0x0A }
        @inlinable static var scope: UInt8 { 0x0A }
        @inlinable static var span: UInt8 { 0x12 }
        @inlinable static var scopeName: UInt8 { 0x0A }
        @inlinable static var scopeVersion: UInt8 { 0x12 }
        // Span: trace_id = 1, span_id = 2, parent_span_id = 4, name = 5, kind = 6 (varint),
        // start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64), attributes = 9, status = 15.
        @inlinable static var traceID: UInt8 { 0x0A }
        @inlinable static var spanID: UInt8 { 0x12 }
        @inlinable static var parentSpanID: UInt8 { 0x22 }
        @inlinable static var spanName: UInt8 { 0x2A }
        @inlinable static var kind: UInt8 { 0x30 }
        @inlinable static var startTime: UInt8 { 0x39 }
        @inlinable static var endTime: UInt8 { 0x41 }
        @inlinable static var spanAttribute: UInt8 { 0x4A }
        @inlinable static var status: UInt8 { 0x7A }
        // Status.message = 2, .code = 3 (varint).
        @inlinable static var statusMessage: UInt8 { 0x12 }
        @inlinable static var statusCode: UInt8 { 0x18 }
        // KeyValue.key = 1, .value = 2; AnyValue.string_value = 1, .int_value = 3 (varint).
        @inlinable static var key: UInt8 { 0x0A }
        @inlinable static var value: UInt8 { 0x12 }
        @inlinable static var stringValue: UInt8 { 0x0A }
        @inlinable static var intValue: UInt8 { 0x18 }
    }

    /// SPAN_KIND_SERVER.
    @inlinable static var serverKind: UInt8 { 2 }
    /// STATUS_CODE_ERROR.
    @inlinable static var errorCode: UInt8 { 2 }

    /// `ResourceSpans.resource` as a whole field (tag, length, message).
    private let resource: [UInt8]
    /// `ScopeSpans.scope` as a whole field.
    private let scope: [UInt8]

    /// - Parameters:
    ///   - serviceName: the resource's `service.name` (`--otlp-service-name`).
    ///   - scopeVersion: the instrumentation scope's version (Tapper's).
    public init(serviceName: String, scopeVersion: String) {
        let attributes = ProtobufWriter.encode(bound: 256 + serviceName.utf8.count) { w in
            w.attribute(Tag.resourceAttribute, key: "service.name", string: serviceName)
        }
        resource = ProtobufWriter.encode(bound: 16 + attributes.count) { w in
            w.byte(Tag.resource)
            w.varint(UInt64(attributes.count))
            w.bytes(attributes)
        }
        let scopeBody = ProtobufWriter.encode(bound: 32 + scopeVersion.utf8.count) { w in
            w.string(Tag.scopeName, "tapper")
            w.string(Tag.scopeVersion, scopeVersion)
        }
        scope = ProtobufWriter.encode(bound: 16 + scopeBody.count) { w in
            w.byte(Tag.scope)
            w.varint(UInt64(scopeBody.count))
            w.bytes(scopeBody)
        }
    }

    /// The request's bytes before its spans (`ResourceSpans` and `ScopeSpans` headers, the
    /// resource and the scope) when the spans' fields take `spansByteCount` bytes: the request
    /// is this and the spans' fields, one after another.
    public func requestPrefix(spansByteCount: Int) -> [UInt8] {
        let scopeSpans = UInt64(scope.count + spansByteCount)
        let resourceSpans = UInt64(resource.count + 1 + ProtobufWriter.varintSize(scopeSpans)) + scopeSpans
        let count = 1 + ProtobufWriter.varintSize(resourceSpans) + resource.count + 1 + ProtobufWriter.varintSize(scopeSpans) + scope.count
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, written in
            var w = ProtobufWriter(buffer.baseAddress!)
            w.byte(Tag.resourceSpans)
            w.varint(resourceSpans)
            w.bytes(resource)
            w.byte(Tag.scopeSpans)
            w.varint(scopeSpans)
            w.bytes(scope)
            written = buffer.baseAddress!.distance(to: w.p)
            precondition(written == count)
        }
    }
}

/// Writes gateway spans as OTLP protobuf `ScopeSpans.spans` fields (a `Span` message each,
/// SERVER kind), into memory the caller has made room in. Inlined into the I/O thread's code.
///
/// Most spans take the short way: a ``SpanTemplate`` (what the spans of one route, `Host` and
/// instance share, with places for the ids, times and status) is copied and patched, and the
/// path, parent and retries appended. Error spans, a status below 128 (101 for WebSocket, 0
/// for none) and spans without a template take the long way, field by field.
public enum SpanWriter {
    /// Bytes a span takes at most beyond its route's, instance's and `Host`'s pre-encoded fields,
    /// its path and (twice) its outcome: tag and length, ids, kind, times, the `url.path`,
    /// status code, retries and `error.type` attributes' keys and headers, and the status.
    @inlinable public static var spanOverhead: Int { 256 }

    /// Writes a span (a `ScopeSpans.spans` field) at `start`, which has room for
    /// ``spanOverhead`` bytes and the variable parts; returns where it ends.
    /// The long way (see the type's summary): not inlined, as it is seldom taken.
    public static func writeSpan(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, route: SpanRoute, host: SpanHost?,
        instance: SpanInstance?, path: String, status: Int, failed: Bool, outcome: String, retries: Int, at start: UnsafeMutablePointer<UInt8>
    ) -> UnsafeMutablePointer<UInt8> {
        typealias Tag = OTLPProtobufEncoder.Tag
        // Tag, then two bytes for the length (a span of 128 to 16383 bytes, nearly all); the
        // body moves when it needs one byte or more than two.
        start.pointee = Tag.span
        let body = start + 3
        var w = ProtobufWriter(body)
        w.byte(Tag.traceID)
        w.byte(16)
        w.bigEndian(context.traceIDHigh)
        w.bigEndian(context.traceIDLow)
        w.byte(Tag.spanID)
        w.byte(8)
        w.bigEndian(context.spanID)
        if parentSpanID != 0 {
            w.byte(Tag.parentSpanID)
            w.byte(8)
            w.bigEndian(parentSpanID)
        }
        w.bytes(route.encoded)
        w.byte(Tag.kind)
        w.byte(OTLPProtobufEncoder.serverKind)
        w.byte(Tag.startTime)
        w.littleEndian(startUnixNanos)
        w.byte(Tag.endTime)
        w.littleEndian(endUnixNanos)
        w.attribute(Tag.spanAttribute, key: "url.path", string: path)
        if let host { w.bytes(host.encoded) }
        if status > 0 { w.attribute(Tag.spanAttribute, key: "http.response.status_code", int: Int64(status)) }
        if let instance { w.bytes(instance.encoded) }
        if retries > 0 { w.attribute(Tag.spanAttribute, key: "tapper.retries", int: Int64(retries)) }
        // A server span is an error when the gateway answered 5xx or the exchange did not end
        // well (OpenTelemetry HTTP semantic conventions: 4xx is the client's error, not the
        // server span's).
        if status >= 500 || status == 0 || failed { writeError(&w, status: status, failed: failed, outcome: outcome) }
        return finish(start, body: body, end: w.p)
    }

    /// Puts the length of the span whose body was written from `body` (`start` + 3) to `end`
    /// in front of it; returns where the span ends.
    @inlinable @inline(__always)
    public static func finish(_ start: UnsafeMutablePointer<UInt8>, body: UnsafeMutablePointer<UInt8>, end: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        let length = body.distance(to: end)
        if length < 0x80 {
            start[1] = UInt8(length)
            memmove(start + 2, body, length)
            return start + 2 + length
        } else if length < 0x4000 {
            start[1] = UInt8(truncatingIfNeeded: length) | 0x80
            start[2] = UInt8(truncatingIfNeeded: length >> 7)
            return end
        } else {
            let n = ProtobufWriter.varintSize(UInt64(length))
            memmove(start + 1 + n, body, length)
            var prefix = ProtobufWriter(start + 1)
            prefix.varint(UInt64(length))
            return start + 1 + n + length
        }
    }

    /// An error span's `error.type` (the outcome, or the status code of a 5xx that went
    /// through) and `Status { message (the outcome, when there is one), code ERROR }`.
    static func writeError(_ w: inout ProtobufWriter, status: Int, failed: Bool, outcome: String) {
        typealias Tag = OTLPProtobufEncoder.Tag
        if failed {
            w.attribute(Tag.spanAttribute, key: "error.type", string: outcome)
        } else {
            w.attribute(Tag.spanAttribute, key: "error.type", decimal: UInt64(max(0, status)))
        }
        let message = outcome.utf8.count
        let length = (failed ? 1 + ProtobufWriter.varintSize(UInt64(message)) + message : 0) + 2
        w.byte(Tag.status)
        w.varint(UInt64(length))
        if failed {
            w.byte(Tag.statusMessage)
            w.varint(UInt64(message))
            w.bytes(of: outcome)
        }
        w.byte(Tag.statusCode)
        w.byte(OTLPProtobufEncoder.errorCode)
    }

    /// Whether a span of `status` that ended well (`failed` false) takes the short way.
    @inlinable @inline(__always)
    public static func fits(status: Int, failed: Bool) -> Bool {
        !failed && status >= 0x80 && status < 500
    }

    /// Bytes a span written the short way takes at most beyond its template and path.
    @inlinable public static var shortOverhead: Int { 128 }

    /// The short way: writes a span of `template` at `start` (room for the template, the path
    /// and ``shortOverhead``); returns where it ends. Only for a span that ``fits(status:failed:)``.
    @inlinable @inline(__always)
    public static func writeSpan(
        _ template: SpanTemplate, context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, status: Int,
        path: UnsafeRawBufferPointer, retries: Int, at start: UnsafeMutablePointer<UInt8>
    ) -> UnsafeMutablePointer<UInt8> {
        typealias Tag = OTLPProtobufEncoder.Tag
        start.pointee = Tag.span
        let body = start + 3
        var w = ProtobufWriter(body)
        w.bytes(template.body)
        let raw = UnsafeMutableRawPointer(body)
        raw.storeBytes(of: context.traceIDHigh.bigEndian, toByteOffset: SpanTemplate.traceIDOffset, as: UInt64.self)
        raw.storeBytes(of: context.traceIDLow.bigEndian, toByteOffset: SpanTemplate.traceIDOffset + 8, as: UInt64.self)
        raw.storeBytes(of: context.spanID.bigEndian, toByteOffset: SpanTemplate.spanIDOffset, as: UInt64.self)
        raw.storeBytes(of: startUnixNanos.littleEndian, toByteOffset: SpanTemplate.startOffset, as: UInt64.self)
        raw.storeBytes(of: endUnixNanos.littleEndian, toByteOffset: SpanTemplate.endOffset, as: UInt64.self)
        raw.storeBytes(of: UInt8(truncatingIfNeeded: status) | 0x80, toByteOffset: SpanTemplate.statusOffset, as: UInt8.self)
        raw.storeBytes(of: UInt8(truncatingIfNeeded: status >> 7), toByteOffset: SpanTemplate.statusOffset + 1, as: UInt8.self)
        if parentSpanID != 0 {
            w.byte(Tag.parentSpanID)
            w.byte(8)
            w.bigEndian(parentSpanID)
        }
        w.attribute(Tag.spanAttribute, key: "url.path", string: path)
        if retries > 0 { w.attribute(Tag.spanAttribute, key: "tapper.retries", int: Int64(retries)) }
        return finish(start, body: body, end: w.p)
    }
}

/// The start of the `Span` message of every span of one route, `Host` and instance, encoded
/// once: the trace and span id fields (zeros), kind, start and end times (zeros), the
/// `http.response.status_code` attribute (a two-byte value, zero), and the route's, `Host`'s and
/// instance's pre-encoded fields. ``SpanWriter`` copies it and writes the ids, times and
/// status in place. (Protobuf lets a message's fields come in any order.)
public final class SpanTemplate: Sendable {
    public let route: SpanRoute
    public let host: SpanHost?
    public let instance: SpanInstance?
    /// ``instance``'s address (0: none), to compare without touching its reference count.
    public let instanceAddress: UInt
    @usableFromInline let body: [UInt8]

    /// Where the values go in ``body``.
    @inlinable static var traceIDOffset: Int { 2 }
    @inlinable static var spanIDOffset: Int { 20 }
    @inlinable static var startOffset: Int { 31 }
    @inlinable static var endOffset: Int { 40 }
    @inlinable static var statusOffset: Int { 80 }

    /// The bytes it copies.
    @inlinable public var count: Int { body.count }

    public init(route: SpanRoute, host: SpanHost?, instance: SpanInstance?) {
        typealias Tag = OTLPProtobufEncoder.Tag
        self.route = route
        self.host = host
        self.instance = instance
        instanceAddress = instance.map { UInt(bitPattern: ObjectIdentifier($0)) } ?? 0
        let shared = route.encoded.count + (host?.encoded.count ?? 0) + (instance?.encoded.count ?? 0)
        body = ProtobufWriter.encode(bound: 128 + shared) { w in
            let base = w.p
            w.byte(Tag.traceID)
            w.byte(16)
            w.bigEndian(0)
            w.bigEndian(0)
            w.byte(Tag.spanID)
            w.byte(8)
            w.bigEndian(0)
            w.byte(Tag.kind)
            w.byte(OTLPProtobufEncoder.serverKind)
            precondition(base.distance(to: w.p) == Self.startOffset - 1)
            w.byte(Tag.startTime)
            w.littleEndian(0)
            w.byte(Tag.endTime)
            w.littleEndian(0)
            // KeyValue { key "http.response.status_code", value AnyValue { int_value: two bytes } }.
            w.attribute(Tag.spanAttribute, key: "http.response.status_code", int: 0x80)
            precondition(base.distance(to: w.p) == Self.statusOffset + 2)
            w.bytes(route.encoded)
            if let host { w.bytes(host.encoded) }
            if let instance { w.bytes(instance.encoded) }
        }
    }
}

/// Writes protobuf wire format at a pointer; the caller has made room.
@usableFromInline
struct ProtobufWriter {
    @usableFromInline var p: UnsafeMutablePointer<UInt8>

    static let maxVarint = 10

    @inlinable init(_ p: UnsafeMutablePointer<UInt8>) {
        self.p = p
    }

    /// A small message built once (pre-encoded span fields), in at most `bound` bytes.
    static func encode(bound: Int, _ body: (inout ProtobufWriter) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            var w = ProtobufWriter(buffer.baseAddress!)
            body(&w)
            count = buffer.baseAddress!.distance(to: w.p)
            precondition(count <= bound, "pre-encoded span fields overran their bound")
        }
    }

    @inlinable @inline(__always) static func varintSize(_ v: UInt64) -> Int {
        (64 - (v | 1).leadingZeroBitCount + 6) / 7
    }

    @inlinable @inline(__always) mutating func byte(_ b: UInt8) {
        p.pointee = b
        p += 1
    }

    @inlinable @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(v)
        p += 1
    }

    @inlinable @inline(__always) mutating func bigEndian(_ v: UInt64) {
        UnsafeMutableRawPointer(p).storeBytes(of: v.bigEndian, as: UInt64.self)
        p += 8
    }

    @inlinable @inline(__always) mutating func littleEndian(_ v: UInt64) {
        UnsafeMutableRawPointer(p).storeBytes(of: v.littleEndian, as: UInt64.self)
        p += 8
    }

    @inlinable @inline(__always) mutating func bytes(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: raw.count)
        p += raw.count
    }

    @inlinable @inline(__always) mutating func bytes(_ a: [UInt8]) {
        a.withUnsafeBytes { bytes($0) }
    }

    @inlinable @inline(__always) mutating func bytes(_ s: StaticString) {
        bytes(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// The UTF-8 of `s`, copied straight to the pointer (a small string's bytes are not
    /// spilled to the stack first, as they are for a closure over contiguous storage).
    @inlinable @inline(__always) mutating func bytes(of s: String) {
        let (_, written) = s.utf8._copyContents(initializing: UnsafeMutableBufferPointer(start: p, count: s.utf8.count))
        p += written
    }

    /// A length-delimited string field.
    mutating func string(_ tag: UInt8, _ s: String) {
        byte(tag)
        varint(UInt64(s.utf8.count))
        bytes(of: s)
    }

    /// A `KeyValue` field: `key` and the `AnyValue` header of a value of `valueLength` bytes
    /// whose own header (`valueTag`, and its length for strings) comes next.
    @inlinable @inline(__always) mutating func keyValueHeader(_ tag: UInt8, key: StaticString, anyValue: Int) {
        let keyLength = key.utf8CodeUnitCount
        byte(tag)
        varint(UInt64(1 + Self.varintSize(UInt64(keyLength)) + keyLength + 1 + Self.varintSize(UInt64(anyValue)) + anyValue))
        byte(OTLPProtobufEncoder.Tag.key)
        varint(UInt64(keyLength))
        bytes(key)
        byte(OTLPProtobufEncoder.Tag.value)
        varint(UInt64(anyValue))
    }

    /// An attribute with a string value.
    @inlinable @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, string value: String) {
        let n = value.utf8.count
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(UInt64(n)) + n)
        byte(OTLPProtobufEncoder.Tag.stringValue)
        varint(UInt64(n))
        bytes(of: value)
    }

    /// An attribute with a string value given as its UTF-8 bytes.
    @inlinable @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, string value: UnsafeRawBufferPointer) {
        let n = value.count
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(UInt64(n)) + n)
        byte(OTLPProtobufEncoder.Tag.stringValue)
        varint(UInt64(n))
        bytes(value)
    }

    /// An attribute with an integer value.
    @inlinable @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, int value: Int64) {
        let v = UInt64(bitPattern: value)
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(v))
        byte(OTLPProtobufEncoder.Tag.intValue)
        varint(v)
    }

    /// An attribute whose string value is `value` in decimal.
    @usableFromInline mutating func attribute(_ tag: UInt8, key: StaticString, decimal value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        keyValueHeader(tag, key: key, anyValue: 1 + 1 + digits)
        byte(OTLPProtobufEncoder.Tag.stringValue)
        byte(UInt8(digits))
        var v = value
        for i in stride(from: digits - 1, through: 0, by: -1) {
            p[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
        p += digits
    }
}
