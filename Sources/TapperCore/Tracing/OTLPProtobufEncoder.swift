#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Encodes spans as an OTLP/HTTP protobuf `ExportTraceServiceRequest` (the body of
/// `POST /v1/traces` with `Content-Type: application/x-protobuf`, OTLP/HTTP's default encoding),
/// by hand, into one reused buffer.
///
/// The messages written (opentelemetry-proto `collector/trace/v1`, `trace/v1`, `common/v1`,
/// `resource/v1`): one `ResourceSpans` (resource attribute `service.name`), one `ScopeSpans`
/// (scope `tapper` and its version), and per span a SERVER `Span` with its ids (bytes, trace id
/// big-endian high half first), name, times (`fixed64`), attributes and, when it failed, a
/// `Status` with code ERROR. What every span of a route, an instance or a `Host` shares comes
/// pre-encoded (``SpanRoute``, ``SpanInstance``, ``SpanHost``) and is copied in as it is;
/// protobuf lets a message's fields, and a repeated field's elements, come in any order.
public struct OTLPProtobufEncoder: Sendable {
    /// Field tags (field number << 3 | wire type) of the messages written.
    enum Tag {
        // ExportTraceServiceRequest.resource_spans = 1; ResourceSpans.resource = 1, .scope_spans = 2.
        static let resourceSpans: UInt8 = 0x0A
        static let resource: UInt8 = 0x0A
        static let scopeSpans: UInt8 = 0x12
        // Resource.attributes = 1; ScopeSpans.scope = 1, .spans = 2; InstrumentationScope.name = 1, .version = 2.
        static let resourceAttribute: UInt8 = 0x0A
        static let scope: UInt8 = 0x0A
        static let span: UInt8 = 0x12
        static let scopeName: UInt8 = 0x0A
        static let scopeVersion: UInt8 = 0x12
        // Span: trace_id = 1, span_id = 2, parent_span_id = 4, name = 5, kind = 6 (varint),
        // start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64), attributes = 9, status = 15.
        static let traceID: UInt8 = 0x0A
        static let spanID: UInt8 = 0x12
        static let parentSpanID: UInt8 = 0x22
        static let spanName: UInt8 = 0x2A
        static let kind: UInt8 = 0x30
        static let startTime: UInt8 = 0x39
        static let endTime: UInt8 = 0x41
        static let spanAttribute: UInt8 = 0x4A
        static let status: UInt8 = 0x7A
        // Status.message = 2, .code = 3 (varint).
        static let statusMessage: UInt8 = 0x12
        static let statusCode: UInt8 = 0x18
        // KeyValue.key = 1, .value = 2; AnyValue.string_value = 1, .int_value = 3 (varint).
        static let key: UInt8 = 0x0A
        static let value: UInt8 = 0x12
        static let stringValue: UInt8 = 0x0A
        static let intValue: UInt8 = 0x18
    }

    /// SPAN_KIND_SERVER.
    static let serverKind: UInt8 = 2
    /// STATUS_CODE_ERROR.
    static let errorCode: UInt8 = 2

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

    /// The request body for the spans of `chunks` (tests, tools; the exporter writes into its
    /// own buffer).
    public func encode(_ chunks: [SpanChunk]) -> [UInt8] {
        let bound = bound(chunks)
        var message = 0..<0
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            message = encode(chunks, into: UnsafeMutableRawBufferPointer(buffer))
            count = message.upperBound
        }
        return Array(out[message])
    }

    /// At least the bytes ``encode(_:into:)`` writes for `chunks`.
    public func bound(_ chunks: [SpanChunk]) -> Int {
        var n = headroom
        for chunk in chunks {
            // Ids, times and small fields (~70), url.path's key and headers, status code,
            // retries, error.type and the status message (the outcome twice: its bytes are
            // counted once here, once below), a longer length prefix.
            n += chunk.count * 320
            n += 2 * chunk.bytes.count
            chunk.records.withUnsafeBufferPointer { records in
                for r in records {
                    n += r.route._withUnsafeGuaranteedRef { $0.encoded.count }
                    if let host = r.host { n += host._withUnsafeGuaranteedRef { $0.encoded.count } }
                    if let instance = r.instance { n += instance._withUnsafeGuaranteedRef { $0.encoded.count } }
                }
            }
        }
        return n
    }

    /// Room before the spans for the outer headers, whose lengths are known only once the spans
    /// are written: the headers then end where the spans begin.
    private var headroom: Int { 2 * ProtobufWriter.maxVarint + 2 + resource.count + scope.count }

    /// Writes the request body for the spans of `chunks`, in order, into `region` (of at least
    /// ``bound(_:)`` bytes), and returns where in `region` it is.
    public func encode(_ chunks: [SpanChunk], into region: UnsafeMutableRawBufferPointer) -> Range<Int> {
        let base = region.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let headroom = headroom
        precondition(region.count >= headroom)
        var end = base + headroom
        for chunk in chunks {
            let strings = UnsafePointer(chunk.bytes.base)
            chunk.records.withUnsafeBufferPointer { records in
                for r in records { end = Self.append(r, strings: strings, at: end) }
            }
            withExtendedLifetime(chunk) {}
        }
        precondition(base.distance(to: end) <= region.count, "spans overran their bound")
        let scopeSpans = UInt64(scope.count + (base + headroom).distance(to: end))
        let resourceSpans = UInt64(resource.count + 1 + ProtobufWriter.varintSize(scopeSpans)) + scopeSpans
        let prefix = 1 + ProtobufWriter.varintSize(resourceSpans) + resource.count + 1 + ProtobufWriter.varintSize(scopeSpans) + scope.count
        let start = headroom - prefix
        var w = ProtobufWriter(base + start)
        w.byte(Tag.resourceSpans)
        w.varint(resourceSpans)
        w.bytes(resource)
        w.byte(Tag.scopeSpans)
        w.varint(scopeSpans)
        w.bytes(scope)
        assert(w.p == base + headroom)
        return start..<base.distance(to: end)
    }

    /// Writes `span` (a `ScopeSpans.spans` field) at `start`; returns where it ends.
    /// - Parameter strings: the bytes of the span's chunk.
    @inline(__always)
    static func append(_ span: SpanRecord, strings: UnsafePointer<UInt8>, at start: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        // Tag, then two bytes for the length (a span of 128 to 16383 bytes, nearly all); the
        // body moves when it needs one byte or more than two.
        start.pointee = Tag.span
        let body = start + 3
        var w = ProtobufWriter(body)
        w.byte(Tag.traceID)
        w.byte(16)
        w.bigEndian(span.context.traceIDHigh)
        w.bigEndian(span.context.traceIDLow)
        w.byte(Tag.spanID)
        w.byte(8)
        w.bigEndian(span.context.spanID)
        if span.parentSpanID != 0 {
            w.byte(Tag.parentSpanID)
            w.byte(8)
            w.bigEndian(span.parentSpanID)
        }
        span.route._withUnsafeGuaranteedRef { w.bytes($0.encoded) }
        w.byte(Tag.kind)
        w.byte(serverKind)
        w.byte(Tag.startTime)
        w.littleEndian(span.startUnixNanos)
        w.byte(Tag.endTime)
        w.littleEndian(span.endUnixNanos)
        w.attribute(Tag.spanAttribute, key: "url.path", string: UnsafeRawBufferPointer(start: strings + Int(span.path.offset), count: Int(span.path.count)))
        if let host = span.host { host._withUnsafeGuaranteedRef { w.bytes($0.encoded) } }
        if span.status > 0 { w.attribute(Tag.spanAttribute, key: "http.response.status_code", int: Int64(span.status)) }
        if let instance = span.instance { instance._withUnsafeGuaranteedRef { w.bytes($0.encoded) } }
        if span.retries > 0 { w.attribute(Tag.spanAttribute, key: "tapper.retries", int: Int64(span.retries)) }
        if span.isError {
            let outcome = UnsafeRawBufferPointer(start: strings + Int(span.outcome.offset), count: Int(span.outcome.count))
            if span.failed {
                w.attribute(Tag.spanAttribute, key: "error.type", string: outcome)
            } else {
                w.attribute(Tag.spanAttribute, key: "error.type", decimal: UInt64(max(0, span.status)))
            }
            // Status { message (the outcome, when there is one), code ERROR }.
            let message = outcome.count
            let status = (span.failed ? 1 + ProtobufWriter.varintSize(UInt64(message)) + message : 0) + 2
            w.byte(Tag.status)
            w.varint(UInt64(status))
            if span.failed {
                w.byte(Tag.statusMessage)
                w.varint(UInt64(message))
                w.bytes(outcome)
            }
            w.byte(Tag.statusCode)
            w.byte(errorCode)
        }
        let length = body.distance(to: w.p)
        if length < 0x80 {
            start[1] = UInt8(length)
            memmove(start + 2, body, length)
            return start + 2 + length
        } else if length < 0x4000 {
            start[1] = UInt8(truncatingIfNeeded: length) | 0x80
            start[2] = UInt8(truncatingIfNeeded: length >> 7)
            return w.p
        } else {
            let n = ProtobufWriter.varintSize(UInt64(length))
            memmove(start + 1 + n, body, length)
            var prefix = ProtobufWriter(start + 1)
            prefix.varint(UInt64(length))
            return start + 1 + n + length
        }
    }
}

/// Writes protobuf wire format at a pointer; the caller has made room.
struct ProtobufWriter {
    var p: UnsafeMutablePointer<UInt8>

    static let maxVarint = 10

    init(_ p: UnsafeMutablePointer<UInt8>) {
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

    @inline(__always) static func varintSize(_ v: UInt64) -> Int {
        (64 - (v | 1).leadingZeroBitCount + 6) / 7
    }

    @inline(__always) mutating func byte(_ b: UInt8) {
        p.pointee = b
        p += 1
    }

    @inline(__always) mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            p.pointee = UInt8(truncatingIfNeeded: v) | 0x80
            p += 1
            v >>= 7
        }
        p.pointee = UInt8(v)
        p += 1
    }

    @inline(__always) mutating func bigEndian(_ v: UInt64) {
        UnsafeMutableRawPointer(p).storeBytes(of: v.bigEndian, as: UInt64.self)
        p += 8
    }

    @inline(__always) mutating func littleEndian(_ v: UInt64) {
        UnsafeMutableRawPointer(p).storeBytes(of: v.littleEndian, as: UInt64.self)
        p += 8
    }

    @inline(__always) mutating func bytes(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, raw.count > 0 else { return }
        UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: raw.count)
        p += raw.count
    }

    @inline(__always) mutating func bytes(_ a: [UInt8]) {
        a.withUnsafeBytes { bytes($0) }
    }

    @inline(__always) mutating func bytes(_ s: StaticString) {
        bytes(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// The UTF-8 of `s`, copied straight to the pointer (a small string's bytes are not
    /// spilled to the stack first, as they are for a closure over contiguous storage).
    @inline(__always) mutating func bytes(of s: String) {
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
    @inline(__always) private mutating func keyValueHeader(_ tag: UInt8, key: StaticString, anyValue: Int) {
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
    @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, string value: String) {
        let n = value.utf8.count
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(UInt64(n)) + n)
        byte(OTLPProtobufEncoder.Tag.stringValue)
        varint(UInt64(n))
        bytes(of: value)
    }

    /// An attribute with a string value given as its UTF-8 bytes.
    @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, string value: UnsafeRawBufferPointer) {
        let n = value.count
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(UInt64(n)) + n)
        byte(OTLPProtobufEncoder.Tag.stringValue)
        varint(UInt64(n))
        bytes(value)
    }

    /// An attribute with an integer value.
    @inline(__always) mutating func attribute(_ tag: UInt8, key: StaticString, int value: Int64) {
        let v = UInt64(bitPattern: value)
        keyValueHeader(tag, key: key, anyValue: 1 + Self.varintSize(v))
        byte(OTLPProtobufEncoder.Tag.intValue)
        varint(v)
    }

    /// An attribute whose string value is `value` in decimal.
    mutating func attribute(_ tag: UInt8, key: StaticString, decimal value: UInt64) {
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
