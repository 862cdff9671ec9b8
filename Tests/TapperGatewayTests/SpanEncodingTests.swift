import NIOCore
import TapperCore
import Testing

@testable import TapperGateway

/// Reads protobuf wire format (what the OTLP encoder writes), for the tests' checks.
struct ProtoMessage {
    enum Value: Equatable {
        case varint(UInt64)
        case fixed64(UInt64)
        case bytes([UInt8])
        case fixed32(UInt32)
    }

    var fields: [(number: Int, value: Value)] = []

    init(_ bytes: [UInt8]) throws {
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < bytes.count, shift < 64 else { throw ProtoError.truncated }
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7F) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }
        while i < bytes.count {
            let key = try varint()
            let number = Int(key >> 3)
            switch key & 7 {
            case 0: fields.append((number, .varint(try varint())))
            case 1:
                guard i + 8 <= bytes.count else { throw ProtoError.truncated }
                fields.append((number, .fixed64(bytes[i..<i + 8].reversed().reduce(0) { $0 << 8 | UInt64($1) })))
                i += 8
            case 2:
                let n = Int(try varint())
                guard i + n <= bytes.count else { throw ProtoError.truncated }
                fields.append((number, .bytes(Array(bytes[i..<i + n]))))
                i += n
            case 5:
                guard i + 4 <= bytes.count else { throw ProtoError.truncated }
                fields.append((number, .fixed32(bytes[i..<i + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) })))
                i += 4
            default: throw ProtoError.wireType(Int(key & 7))
            }
        }
    }

    enum ProtoError: Error { case truncated, wireType(Int), missing(Int) }

    func all(_ number: Int) -> [Value] { fields.filter { $0.number == number }.map(\.value) }

    func message(_ number: Int) throws -> ProtoMessage {
        guard case .bytes(let b) = all(number).first else { throw ProtoError.missing(number) }
        return try ProtoMessage(b)
    }

    func messages(_ number: Int) throws -> [ProtoMessage] {
        try all(number).compactMap { if case .bytes(let b) = $0 { return try ProtoMessage(b) } else { return nil } }
    }

    func bytes(_ number: Int) -> [UInt8]? {
        if case .bytes(let b) = all(number).first { return b }
        return nil
    }

    func string(_ number: Int) -> String? { bytes(number).map { String(decoding: $0, as: UTF8.self) } }

    func varint(_ number: Int) -> UInt64? {
        if case .varint(let v) = all(number).first { return v }
        return nil
    }

    func fixed64(_ number: Int) -> UInt64? {
        if case .fixed64(let v) = all(number).first { return v }
        return nil
    }

    /// KeyValue attributes in field `number`: string values as String, int values as Int64.
    func attributes(_ number: Int) throws -> [String: any Sendable] {
        var out: [String: any Sendable] = [:]
        for kv in try messages(number) {
            let key = kv.string(1) ?? ""
            let value = try kv.message(2)
            if let s = value.string(1) {
                out[key] = s
            } else if let v = value.varint(3) {
                out[key] = Int64(bitPattern: v)
            }
        }
        return out
    }
}

@Suite struct SpanEncodingTests {
    static let route = SpanRoute(method: "GET", template: "/users/{user_id}", service: "users")
    static let instance = SpanInstance(id: "u1", url: "http://127.0.0.1:9001")
    static let host = SpanHost("127.0.0.1:8000")

    struct Span {
        var status = 200
        var outcome = "ok"
        var parent: UInt64 = 0
        var retries = 1
        var path = "/users/\"7\""
        var host: SpanHost? = SpanEncodingTests.host
        var instance: SpanInstance? = SpanEncodingTests.instance
        var route: SpanRoute = SpanEncodingTests.route
    }

    /// A chunk of `spans`, recorded the short way where a span allows it (`templates`), or all
    /// the long way.
    static func chunk(_ spans: [Span], templates: Bool = true) -> SpanChunk {
        var c = SpanChunk()
        for (i, s) in spans.enumerated() {
            let context = TraceParent(traceIDHigh: 0x4bf9_2f35_77b3_4da6, traceIDLow: 0xa3ce_929d_0e0e_4736, spanID: 0xabcd + UInt64(i), flags: 1)
            let template = SpanTemplate(route: s.route, host: s.host, instance: s.instance)
            if templates {
                c.append(
                    context: context, parentSpanID: s.parent, startUnixNanos: 1_700_000_000_000_000_000, endUnixNanos: 1_700_000_000_001_500_000,
                    template: template, path: s.path, status: s.status, failed: s.outcome != "ok", outcome: s.outcome, retries: s.retries)
            } else {
                c.appendTheLongWay(
                    context: context, parentSpanID: s.parent, startUnixNanos: 1_700_000_000_000_000_000, endUnixNanos: 1_700_000_000_001_500_000,
                    template: template, path: s.path, status: s.status, failed: s.outcome != "ok", outcome: s.outcome, retries: s.retries)
            }
        }
        c.seal()
        return c
    }

    static func chunk(_ spans: [(status: Int, outcome: String, parent: UInt64)], templates: Bool = true) -> SpanChunk {
        chunk(spans.map { Span(status: $0.status, outcome: $0.outcome, parent: $0.parent) }, templates: templates)
    }

    static func encode(_ encoder: OTLPProtobufEncoder, _ chunks: [SpanChunk]) -> [UInt8] {
        Array(buffer: encoder.encode(chunks))
    }

    /// The spans of an encoded request, with its resource and scope.
    static func decode(_ body: [UInt8]) throws -> (resource: ProtoMessage, scope: ProtoMessage, spans: [ProtoMessage]) {
        let request = try ProtoMessage(body)
        let resourceSpans = try request.messages(1)
        #expect(resourceSpans.count == 1)
        let scopeSpans = try resourceSpans[0].messages(2)
        #expect(scopeSpans.count == 1)
        return (try resourceSpans[0].message(1), try scopeSpans[0].message(1), try scopeSpans[0].messages(2))
    }

    @Test(arguments: [true, false]) func encodesOTLPProtobuf(templates: Bool) throws {
        let encoder = OTLPProtobufEncoder(serviceName: "tapper-gateway", scopeVersion: "1.0")
        let body = Self.encode(encoder, [Self.chunk([(200, "ok", 0x1122_3344_5566_7788), (200, "ok", 0)], templates: templates)])
        let (resource, scope, spans) = try Self.decode(body)
        #expect(try resource.attributes(1)["service.name"] as? String == "tapper-gateway")
        #expect(scope.string(1) == "tapper" && scope.string(2) == "1.0")
        #expect(spans.count == 2)
        let s = spans[0]
        #expect(s.bytes(1) == [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36])
        #expect(s.bytes(2) == [0, 0, 0, 0, 0, 0, 0xab, 0xcd])
        #expect(s.bytes(4) == [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        #expect(spans[1].bytes(4) == nil && spans[1].bytes(2) == [0, 0, 0, 0, 0, 0, 0xab, 0xce])
        #expect(s.string(5) == "GET /users/{user_id}")
        #expect(s.varint(6) == 2)  // SPAN_KIND_SERVER
        #expect(s.fixed64(7) == 1_700_000_000_000_000_000)
        #expect(s.fixed64(8) == 1_700_000_000_001_500_000)
        #expect(s.all(15).isEmpty)  // no status on a span that went well
        let attributes = try s.attributes(9)
        #expect(attributes["http.request.method"] as? String == "GET")
        #expect(attributes["http.route"] as? String == "/users/{user_id}")
        #expect(attributes["url.path"] as? String == "/users/\"7\"")
        #expect(attributes["server.address"] as? String == "127.0.0.1")
        #expect(attributes["server.port"] as? Int64 == 8000)
        #expect(attributes["http.response.status_code"] as? Int64 == 200)
        #expect(attributes["tapper.service"] as? String == "users")
        #expect(attributes["tapper.instance"] as? String == "u1")
        #expect(attributes["tapper.instance.url"] as? String == "http://127.0.0.1:9001")
        #expect(attributes["tapper.retries"] as? Int64 == 1)
        #expect(attributes["error.type"] == nil)
        #expect(try s.attributes(9).count == 10 && s.all(9).count == 10)  // each attribute once
    }

    /// The short way (a copied template) and the long way (field by field) give the same spans,
    /// whatever varies: statuses on both sides of 128 and 500, parents, retries, paths whose
    /// span needs a one-, two- or three-byte length, no `Host`, no instance.
    @Test func shortAndLongWaysAgree() throws {
        let tiny = SpanRoute(method: "", template: "", service: "")
        var spans: [Span] = []
        for status in [0, 101, 127, 128, 200, 204, 404, 499, 500, 503] {
            for outcome in ["ok", "upstream_timeout"] {
                spans.append(Span(status: status, outcome: outcome, parent: UInt64(status), retries: status % 3))
            }
        }
        spans.append(Span(path: "/" + String(repeating: "p", count: 300)))
        spans.append(Span(path: "/" + String(repeating: "q", count: 20_000)))
        spans.append(Span(path: "/", host: nil, instance: nil, route: tiny))
        spans.append(Span(path: "", host: nil))
        spans.append(Span(path: "/caf\u{e9}/\u{1F600}", instance: nil))
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        let short = try Self.decode(Self.encode(encoder, [Self.chunk(spans)])).spans
        let long = try Self.decode(Self.encode(encoder, [Self.chunk(spans, templates: false)])).spans
        #expect(short.count == spans.count && long.count == spans.count)
        for (i, (a, b)) in zip(short, long).enumerated() {
            // Field by field, attributes by key (their order differs between the two ways).
            for field in [1, 2, 4, 5, 6, 7, 8] { #expect(a.all(field) == b.all(field), "span \(i) field \(field)") }
            #expect(a.all(15) == b.all(15), "span \(i) status")
            let sa = try a.attributes(9).mapValues { "\($0)" }
            let sb = try b.attributes(9).mapValues { "\($0)" }
            #expect(sa == sb, "span \(i) attributes")
            #expect(a.all(9).count == b.all(9).count)
            #expect(sa["url.path"] == spans[i].path)
        }
    }

    @Test func errorSpansCarryStatusAndType() throws {
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        let (_, _, spans) = try Self.decode(Self.encode(encoder, [Self.chunk([(504, "upstream_timeout", 1), (404, "ok", 1), (500, "ok", 1)])]))
        let timeout = try spans[0].message(15)
        #expect(timeout.varint(3) == 2 && timeout.string(2) == "upstream_timeout")  // STATUS_CODE_ERROR
        #expect(try spans[0].attributes(9)["error.type"] as? String == "upstream_timeout")
        // A 404 from the upstream is the client's error: no status on the server span.
        let notFound = try spans[1].attributes(9)
        #expect(spans[1].all(15).isEmpty && notFound["error.type"] == nil)
        // A 500 that the upstream sent: an error whose type is the status code.
        let failed = try spans[2].message(15)
        #expect(failed.varint(3) == 2 && failed.string(2) == nil)
        #expect(try spans[2].attributes(9)["error.type"] as? String == "500")
    }

    @Test func requestsOfNoSpansAndOfManyChunks() throws {
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        #expect(try Self.decode(Self.encode(encoder, [])).spans.isEmpty)
        #expect(try Self.decode(Self.encode(encoder, [SpanChunk(), SpanChunk()])).spans.isEmpty)
        // Enough spans that the outer lengths need three bytes.
        let chunks = (0..<40).map { _ in Self.chunk(Array(repeating: (200, "ok", UInt64(0)), count: 20)) }
        let body = Self.encode(encoder, chunks)
        #expect(body.count > 1 << 14)
        #expect(try Self.decode(body).spans.count == 800)
        // What the poster writes, part by part, is the same request.
        #expect(encoder.request(chunks).reduce(into: [UInt8]()) { $0 += Array(buffer: $1) } == body)
    }

    @Test func chunksSplitBetweenSpans() throws {
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        var c = Self.chunk([(200, "ok", 0), (502, "upstream_unavailable", 0), (201, "ok", 0)])
        #expect(c.count == 3)
        let (first, rest) = c.split(at: 1)
        #expect(first.count == 1 && rest.count == 2)
        #expect(first.encodedCount + rest.encodedCount == c.encodedCount)
        let one = try Self.decode(Self.encode(encoder, [first])).spans
        let two = try Self.decode(Self.encode(encoder, [rest])).spans
        #expect(one.count == 1 && two.count == 2)
        #expect(try one[0].attributes(9)["http.response.status_code"] as? Int64 == 200)
        #expect(try two[0].attributes(9)["error.type"] as? String == "upstream_unavailable")
        #expect(try two[1].attributes(9)["http.response.status_code"] as? Int64 == 201)
        // Both halves again, in order, make the whole chunk's request; so do splits of splits.
        #expect(Self.encode(encoder, [first, rest]) == Self.encode(encoder, [c]))
        let (a, b) = rest.split(at: 1)
        #expect(Self.encode(encoder, [first, a, b]) == Self.encode(encoder, [c]))
        #expect(rest.split(at: 0).0.isEmpty && rest.split(at: 5).1.isEmpty)
        // Appending to a piece that shares its bytes leaves the other pieces as they were.
        var piece = rest
        piece.append(
            context: TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 1), parentSpanID: 0, startUnixNanos: 1, endUnixNanos: 2,
            template: SpanTemplate(route: Self.route, host: nil, instance: nil), path: "/new", status: 204, failed: false, outcome: "ok", retries: 0)
        piece.seal()
        #expect(piece.count == 3)
        let three = try Self.decode(Self.encode(encoder, [piece])).spans
        #expect(try three.map { try $0.attributes(9)["http.response.status_code"] as? Int64 } == [502, 201, 204])
        #expect(try three[2].attributes(9)["url.path"] as? String == "/new")
        #expect(try Self.decode(Self.encode(encoder, [c])).spans.count == 3)
        #expect(try Self.decode(Self.encode(encoder, [rest])).spans.count == 2)
        #expect(try Self.decode(Self.encode(encoder, [first])).spans.count == 1)
        // A chunk that grows past its first room keeps every span.
        var big = SpanChunk(capacity: 1)
        for i in 0..<40 {
            big.append(
                context: TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: UInt64(i + 1), flags: 1), parentSpanID: 0, startUnixNanos: 1,
                endUnixNanos: 2, template: SpanTemplate(route: Self.route, host: Self.host, instance: Self.instance), path: "/users/\(i)",
                status: 200, failed: false, outcome: "ok", retries: 0)
        }
        big.seal()
        let spans = try Self.decode(Self.encode(encoder, [big])).spans
        #expect(spans.count == 40)
        #expect(try spans.map { try $0.attributes(9)["url.path"] as? String } == (0..<40).map { "/users/\($0)" })
        c = SpanChunk()
        #expect(c.isEmpty && c.encodedCount == 0)
    }
}

@Suite struct RequestIDGeneratorTests {
    @Test func makesThirtyTwoLowerCaseHexDigitsOfTwoRandomWords() {
        var g = RequestIDGenerator()
        var copy = g
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = g.make()
            let (a, b) = (copy.next(), copy.next())
            #expect(id == TraceParent.hex(a) + TraceParent.hex(b))
            #expect(id.utf8.count == 32 && id.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) })
            seen.insert(id)
        }
        #expect(seen.count == 1000)
    }
}
