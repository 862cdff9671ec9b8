import Foundation
import TapperCore
import Testing

@Suite struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func parsesTheSpecExample() throws {
        let p = try #require(TraceParent(parsing: Self.valid))
        #expect(p.traceIDHigh == 0x4bf9_2f35_77b3_4da6)
        #expect(p.traceIDLow == 0xa3ce_929d_0e0e_4736)
        #expect(p.spanID == 0x00f0_67aa_0ba9_02b7)
        #expect(p.flags == 1 && p.sampled)
        #expect(p.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(p.spanIDHex == "00f067aa0ba902b7")
        #expect(p.headerValue == Self.valid)
        #expect(TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled == false)
    }

    @Test func formatsWhatItParses() throws {
        let p = TraceParent(traceIDHigh: 1, traceIDLow: .max, spanID: 0xabc, flags: 0x03)
        #expect(p.headerValue == "00-0000000000000001ffffffffffffffff-0000000000000abc-03")
        #expect(TraceParent(parsing: p.headerValue) == p)
    }

    @Test func refusesWhatTheW3CRulesRefuse() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00 is exactly 55 bytes
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero parent id
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // separator
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later version's extra needs a '-'
        ]
        for value in bad { #expect(TraceParent(parsing: value) == nil, "\(value)") }
    }

    @Test func acceptsLaterVersionsWithExtraFields() {
        let p = TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
        #expect(p?.spanID == 0x00f0_67aa_0ba9_02b7)
        #expect(TraceParent(parsing: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") != nil)
    }
}

@Suite struct TraceSamplerTests {
    static let sampledParent = TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 1)
    static let unsampledParent = TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 0)

    @Test func followsTheParent() {
        for rate in [0.0, 0.5, 1.0] {
            let s = TraceSampler(rate: rate)
            #expect(s.shouldSample(parent: Self.sampledParent, traceIDLow: .max))
            #expect(!s.shouldSample(parent: Self.unsampledParent, traceIDLow: 0))
        }
    }

    @Test func samplesNewTracesByTraceIDRatio() {
        #expect(TraceSampler(rate: 1).shouldSample(parent: nil, traceIDLow: .max))
        #expect(!TraceSampler(rate: 0).shouldSample(parent: nil, traceIDLow: 0))
        let half = TraceSampler(rate: 0.5)
        #expect(half.shouldSample(parent: nil, traceIDLow: 1 << 63 - 1))
        #expect(!half.shouldSample(parent: nil, traceIDLow: 1 << 63))
        // Over evenly spread ids the share is the rate.
        var rng = SystemRandomNumberGenerator()
        let quarter = TraceSampler(rate: 0.25)
        let n = 40_000
        let hits = (0..<n).filter { _ in quarter.shouldSample(parent: nil, traceIDLow: rng.next()) }.count
        #expect(abs(Double(hits) / Double(n) - 0.25) < 0.02)
        #expect(TraceSampler(rate: 7).rate == 1 && TraceSampler(rate: -1).rate == 0)
    }
}

@Suite struct SpanBatcherTests {
    typealias Batcher = SpanBatcher<[Int]>
    static let settings = Batcher.Settings(maxQueue: 10, maxBatch: 4, delayNanos: 1000)

    /// A batch's spans in order (it comes as chunks).
    static func spans(_ batch: [[Int]]?) -> [Int]? { batch.map { $0.flatMap { $0 } } }

    @Test func fullBatchIsDueAtOnceAndWakesTheExporter() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer([1, 2, 3], now: 0) == .init(accepted: 3, dropped: 0, batchReady: false))
        #expect(b.takeBatch(now: 10) == nil)
        #expect(b.offer([4], now: 10) == .init(accepted: 1, dropped: 0, batchReady: true))
        #expect(Self.spans(b.takeBatch(now: 10)) == [1, 2, 3, 4])
        #expect(b.count == 0 && b.nextDeadline == nil)
    }

    @Test func partialBatchWaitsForTheDelay() {
        var b = Batcher(settings: Self.settings)
        _ = b.offer([1], now: 100)
        _ = b.offer([2], now: 500)
        #expect(b.nextDeadline == 1100)
        #expect(b.takeBatch(now: 1099) == nil)
        #expect(Self.spans(b.takeBatch(now: 1100)) == [1, 2])
        _ = b.offer([3], now: 2000)
        #expect(Self.spans(b.takeBatch(now: 2000, flushing: true)) == [3])
    }

    @Test func dropsAndCountsWhatDoesNotFit() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer(Array(0..<8), now: 0).dropped == 0)
        #expect(b.offer(Array(8..<13), now: 1) == .init(accepted: 2, dropped: 3, batchReady: false))
        #expect(b.dropped == 3 && b.count == 10)
        // A chunk larger than a batch is split; the rest is the next batch.
        #expect(Self.spans(b.takeBatch(now: 1)) == [0, 1, 2, 3])
        #expect(Self.spans(b.takeBatch(now: 1)) == [4, 5, 6, 7])
        // Two left: a partial batch, due one delay after the last export.
        #expect(b.takeBatch(now: 2) == nil)
        #expect(Self.spans(b.takeBatch(now: 1001)) == [8, 9])
    }

    @Test func batchesAreWholeChunksUpToTheLimit() {
        var b = Batcher(settings: Self.settings)
        _ = b.offer([1, 2, 3], now: 0)
        _ = b.offer([4, 5], now: 0)
        _ = b.offer([6], now: 0)
        // [1, 2, 3] and [4, 5] make 5 > 4: the second chunk waits, whole, for the next batch.
        #expect(b.takeBatch(now: 0) == [[1, 2, 3]])
        #expect(b.count == 3)
        #expect(b.takeBatch(now: 0, flushing: true) == [[4, 5], [6]])
    }
}

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

@Suite struct OTLPProtobufEncoderTests {
    static let route = SpanRoute(method: "GET", template: "/users/{user_id}", service: "users")
    static let instance = SpanInstance(id: "u1", url: "http://127.0.0.1:9001")
    static let host = SpanHost("127.0.0.1:8000")

    static func chunk(_ spans: [(status: Int, outcome: String, parent: UInt64)], path: String = "/users/\"7\"", host: SpanHost? = host) -> SpanChunk {
        var c = SpanChunk()
        for (i, s) in spans.enumerated() {
            c.append(
                context: TraceParent(traceIDHigh: 0x4bf9_2f35_77b3_4da6, traceIDLow: 0xa3ce_929d_0e0e_4736, spanID: 0xabcd + UInt64(i), flags: 1),
                parentSpanID: s.parent, startUnixNanos: 1_700_000_000_000_000_000, endUnixNanos: 1_700_000_000_001_500_000, route: route, host: host,
                instance: instance, path: path, status: s.status, outcome: s.outcome, retries: 1)
        }
        return c
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

    @Test func encodesOTLPProtobuf() throws {
        let encoder = OTLPProtobufEncoder(serviceName: "tapper-gateway", scopeVersion: "1.0")
        let (resource, scope, spans) = try Self.decode(encoder.encode([Self.chunk([(200, "ok", 0x1122_3344_5566_7788), (200, "ok", 0)])]))
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
    }

    @Test func errorSpansCarryStatusAndType() throws {
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        let (_, _, spans) = try Self.decode(encoder.encode([Self.chunk([(504, "upstream_timeout", 1), (404, "ok", 1), (500, "ok", 1)])]))
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

    @Test func lengthPrefixesFitTheSpan() throws {
        // A span of under 128 bytes (one-byte length), and one over 16 KiB (three bytes).
        let small = SpanRoute(method: "", template: "", service: "")
        var c = SpanChunk()
        c.append(
            context: TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 1), parentSpanID: 0, startUnixNanos: 1, endUnixNanos: 2, route: small,
            host: nil, instance: nil, path: "/", status: 200, outcome: "ok", retries: 0)
        let long = "/" + String(repeating: "p", count: 20_000)
        let encoder = OTLPProtobufEncoder(serviceName: "g", scopeVersion: "1")
        let body = encoder.encode([c, Self.chunk([(200, "ok", 0)], path: long, host: nil)])
        let (_, _, spans) = try Self.decode(body)
        #expect(spans.count == 2)
        #expect(try spans[0].attributes(9)["url.path"] as? String == "/")
        #expect(try spans[1].attributes(9)["url.path"] as? String == long)
        #expect(try spans[1].attributes(9)["server.address"] == nil)
        #expect(body.count < encoder.bound([c, Self.chunk([(200, "ok", 0)], path: long, host: nil)]))
        // No spans: a request with an empty scope.
        #expect(try Self.decode(encoder.encode([])).spans.isEmpty)
    }

    @Test func chunksKeepTheirStrings() {
        var c = Self.chunk([(200, "ok", 0), (502, "upstream_unavailable", 0)])
        #expect(c.count == 2)
        #expect(c.path(c.records[0]) == "/users/\"7\"" && c.outcome(c.records[0]) == "ok" && !c.records[0].isError)
        #expect(c.outcome(c.records[1]) == "upstream_unavailable" && c.records[1].isError)
        #expect(c.name(c.records[1]) == "GET /users/{user_id}")
        #expect(c.instance(c.records[1])?.url == "http://127.0.0.1:9001" && c.host(c.records[1])?.address == "127.0.0.1")
        let (first, rest) = c.split(at: 1)
        #expect(first.count == 1 && rest.count == 1 && rest.outcome(rest.records[0]) == "upstream_unavailable")
        c = SpanChunk()
        #expect(c.isEmpty)
    }

    @Test func splitsHosts() {
        #expect(SpanHost.split("example.com") == ("example.com", nil))
        #expect(SpanHost.split("example.com:8080") == ("example.com", 8080))
        #expect(SpanHost.split("[::1]:8000") == ("::1", 8000))
        #expect(SpanHost.split("[::1]") == ("::1", nil))
        let h = SpanHost("example.com:8080")
        #expect(Array("example.com:8080".utf8).withUnsafeBytes { h.matches($0) })
        #expect(!Array("example.com:8081".utf8).withUnsafeBytes { h.matches($0) })
    }

    @Test func writesHexEightDigitsAtATime() {
        for v: UInt64 in [0, 1, 0x0123_4567_89ab_cdef, .max, 0xa0b0_c0d0_e0f0_0a0b] {
            let digits = String(v, radix: 16)
            #expect(TraceParent.hex(v) == String(repeating: "0", count: 16 - digits.count) + digits)
        }
    }
}
