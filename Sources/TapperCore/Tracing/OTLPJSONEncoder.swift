/// Encodes spans as an OTLP/HTTP JSON `ExportTraceServiceRequest` (the body of
/// `POST /v1/traces` with `Content-Type: application/json`).
///
/// OTLP's JSON form is the proto3 JSON mapping with OTLP's own exceptions
/// (opentelemetry-proto `docs/specification.md`, "JSON Protobuf Encoding"): field names in
/// lowerCamelCase, trace and span ids as hex strings (not base64), enums as integers, and 64-bit
/// integers (times, `intValue`) as decimal strings. One resource (`service.name`) and one scope
/// (`tapper`) hold every span of a batch; each span is a SERVER span named after its route.
public struct OTLPJSONEncoder: Sendable {
    /// The bytes every request starts with: resource and scope, up to the spans array.
    private let prefix: [UInt8]

    /// - Parameters:
    ///   - serviceName: the resource's `service.name` (`--otlp-service-name`).
    ///   - scopeVersion: the instrumentation scope's version (Tapper's).
    public init(serviceName: String, scopeVersion: String) {
        var p: [UInt8] = []
        p.append(contentsOf: #"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"#.utf8)
        Self.appendString(serviceName, to: &p)
        p.append(contentsOf: #"}}]},"scopeSpans":[{"scope":{"name":"tapper","version":"#.utf8)
        Self.appendString(scopeVersion, to: &p)
        p.append(contentsOf: #"},"spans":["#.utf8)
        prefix = p
    }

    /// The request body for `spans`.
    public func encode(_ spans: some Collection<SpanRecord>) -> [UInt8] {
        var out = prefix
        out.reserveCapacity(prefix.count + spans.count * 640 + 8)
        var first = true
        for span in spans {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            Self.append(span, to: &out)
        }
        out.append(contentsOf: "]}]}]}".utf8)
        return out
    }

    static func append(_ span: SpanRecord, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"traceId":""#.utf8)
        appendHex(span.context.traceIDHigh, to: &out)
        appendHex(span.context.traceIDLow, to: &out)
        out.append(contentsOf: #"","spanId":""#.utf8)
        appendHex(span.context.spanID, to: &out)
        out.append(UInt8(ascii: "\""))
        if span.parentSpanID != 0 {
            out.append(contentsOf: #","parentSpanId":""#.utf8)
            appendHex(span.parentSpanID, to: &out)
            out.append(UInt8(ascii: "\""))
        }
        out.append(contentsOf: #","name":"#.utf8)
        out.append(UInt8(ascii: "\""))
        appendEscaped(span.method, to: &out)
        out.append(UInt8(ascii: " "))
        appendEscaped(span.routeTemplate, to: &out)
        out.append(UInt8(ascii: "\""))
        // kind 2: SPAN_KIND_SERVER.
        out.append(contentsOf: #","kind":2,"startTimeUnixNano":""#.utf8)
        appendDecimal(span.startUnixNanos, to: &out)
        out.append(contentsOf: #"","endTimeUnixNano":""#.utf8)
        appendDecimal(span.endUnixNanos, to: &out)
        out.append(contentsOf: #"","attributes":["#.utf8)
        appendAttribute("http.request.method", string: span.method, to: &out, first: true)
        appendAttribute("http.route", string: span.routeTemplate, to: &out)
        appendAttribute("url.path", string: span.path, to: &out)
        if !span.host.isEmpty {
            let (address, port) = splitHost(span.host)
            appendAttribute("server.address", string: address, to: &out)
            if let port { appendAttribute("server.port", int: port, to: &out) }
        }
        if span.status > 0 { appendAttribute("http.response.status_code", int: span.status, to: &out) }
        appendAttribute("tapper.service", string: span.service, to: &out)
        if let id = span.instanceID { appendAttribute("tapper.instance", string: id, to: &out) }
        if let url = span.instanceURL { appendAttribute("tapper.instance.url", string: url.description, to: &out) }
        if span.retries > 0 { appendAttribute("tapper.retries", int: span.retries, to: &out) }
        if span.isError {
            appendAttribute("error.type", string: span.outcome != "ok" ? span.outcome : String(span.status), to: &out)
        }
        out.append(UInt8(ascii: "]"))
        // status: 2 STATUS_CODE_ERROR; unset (0, omitted) otherwise, as HTTP server spans do.
        if span.isError {
            out.append(contentsOf: #","status":{"code":2,"message":"#.utf8)
            appendString(span.outcome, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "}"))
    }

    /// `host[:port]` from a `Host` value (IPv6 literals keep their brackets off).
    public static func splitHost(_ host: String) -> (String, Int?) {
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return (host, nil) }
            let address = String(host[host.index(after: host.startIndex)..<close])
            let rest = host[host.index(after: close)...]
            return (address, rest.hasPrefix(":") ? Int(rest.dropFirst()) : nil)
        }
        guard let colon = host.lastIndex(of: ":") else { return (host, nil) }
        return (String(host[..<colon]), Int(host[host.index(after: colon)...]))
    }

    private static func appendAttribute(_ key: StaticString, string value: String, to out: inout [UInt8], first: Bool = false) {
        appendKey(key, to: &out, first: first)
        out.append(contentsOf: #"{"stringValue":"#.utf8)
        appendString(value, to: &out)
        out.append(contentsOf: "}}".utf8)
    }

    private static func appendAttribute(_ key: StaticString, int value: Int, to out: inout [UInt8]) {
        appendKey(key, to: &out, first: false)
        out.append(contentsOf: #"{"intValue":""#.utf8)
        appendDecimal(UInt64(max(0, value)), to: &out)
        out.append(contentsOf: "\"}}".utf8)
    }

    private static func appendKey(_ key: StaticString, to out: inout [UInt8], first: Bool) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: #"{"key":""#.utf8)
        out.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        out.append(contentsOf: #"","value":"#.utf8)
    }

    /// A JSON string (quotes, backslashes and control characters escaped; other UTF-8 as is).
    static func appendString(_ s: String, to out: inout [UInt8], then tail: String = "") {
        out.append(UInt8(ascii: "\""))
        appendEscaped(s, to: &out)
        if !tail.isEmpty { appendEscaped(tail, to: &out) }
        out.append(UInt8(ascii: "\""))
    }

    /// Bytes JSON strings cannot hold as they are.
    @inline(__always) private static func needsEscape(_ b: UInt8) -> Bool {
        b < 0x20 || b == 0x7F || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\")
    }

    private static func appendEscaped(_ s: String, to out: inout [UInt8]) {
        // The common case (no byte to escape) is one copy of the string's UTF-8.
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            for b in bytes where needsEscape(b) { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true { return }
        appendEscapedSlowly(s, to: &out)
    }

    private static func appendEscapedSlowly(_ s: String, to out: inout [UInt8]) {
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0..<0x20, 0x7F:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(TraceParent.digit(b >> 4))
                out.append(TraceParent.digit(b & 0xF))
            default: out.append(b)
            }
        }
    }

    private static func appendHex(_ v: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { digits in
            for i in 0..<16 { digits[i] = TraceParent.digit(UInt8(truncatingIfNeeded: v >> (60 - UInt64(i) * 4)) & 0xF) }
            out.append(contentsOf: UnsafeBufferPointer(digits))
        }
    }

    private static func appendDecimal(_ v: UInt64, to out: inout [UInt8]) {
        // At most 20 digits, written backwards into a scratch buffer, appended once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var value = v
            var i = 20
            repeat {
                i -= 1
                digits[i] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            out.append(contentsOf: UnsafeBufferPointer(rebasing: digits[i..<20]))
        }
    }
}
