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
    typealias Batcher = SpanBatcher<Int>
    static let settings = Batcher.Settings(maxQueue: 10, maxBatch: 4, delayNanos: 1000)

    @Test func fullBatchIsDueAtOnceAndWakesTheExporter() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer([1, 2, 3], now: 0) == .init(accepted: 3, dropped: 0, batchReady: false))
        #expect(b.takeBatch(now: 10) == nil)
        #expect(b.offer([4], now: 10) == .init(accepted: 1, dropped: 0, batchReady: true))
        #expect(b.takeBatch(now: 10) == [1, 2, 3, 4])
        #expect(b.count == 0 && b.nextDeadline == nil)
    }

    @Test func partialBatchWaitsForTheDelay() {
        var b = Batcher(settings: Self.settings)
        _ = b.offer([1], now: 100)
        _ = b.offer([2], now: 500)
        #expect(b.nextDeadline == 1100)
        #expect(b.takeBatch(now: 1099) == nil)
        #expect(b.takeBatch(now: 1100) == [1, 2])
        _ = b.offer([3], now: 2000)
        #expect(b.takeBatch(now: 2000, flushing: true) == [3])
    }

    @Test func dropsAndCountsWhatDoesNotFit() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer(Array(0..<8), now: 0).dropped == 0)
        #expect(b.offer(Array(8..<13), now: 1) == .init(accepted: 2, dropped: 3, batchReady: false))
        #expect(b.dropped == 3 && b.count == 10)
        #expect(b.takeBatch(now: 1) == [0, 1, 2, 3])
        #expect(b.takeBatch(now: 1) == [4, 5, 6, 7])
        // Two left: a partial batch, due one delay after the last export.
        #expect(b.takeBatch(now: 2) == nil)
        #expect(b.takeBatch(now: 1001) == [8, 9])
    }
}

@Suite struct OTLPJSONEncoderTests {
    static func span(status: Int = 200, outcome: String = "ok", parent: UInt64 = 0x1122_3344_5566_7788) -> SpanRecord {
        SpanRecord(
            context: TraceParent(traceIDHigh: 0x4bf9_2f35_77b3_4da6, traceIDLow: 0xa3ce_929d_0e0e_4736, spanID: 0xabcd, flags: 1), parentSpanID: parent,
            startUnixNanos: 1_700_000_000_000_000_000, endUnixNanos: 1_700_000_000_001_500_000, method: "GET", routeTemplate: "/users/{user_id}",
            path: "/users/\"7\"", host: "127.0.0.1:8000", service: "users", instanceID: "u1",
            instanceURL: ServiceURL(scheme: .http, host: "127.0.0.1", port: 9001), status: status, outcome: outcome, retries: 1
        )
    }

    @Test func encodesOTLPJSONWithHexIDs() throws {
        let body = OTLPJSONEncoder(serviceName: "tapper-gateway", scopeVersion: "1.0").encode([Self.span(), Self.span(parent: 0)])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let resourceSpans = try #require(json["resourceSpans"] as? [[String: Any]])
        let resource = try #require(resourceSpans[0]["resource"] as? [String: Any])
        let resourceAttributes = try #require(resource["attributes"] as? [[String: Any]])
        #expect(resourceAttributes[0]["key"] as? String == "service.name")
        #expect((resourceAttributes[0]["value"] as? [String: Any])?["stringValue"] as? String == "tapper-gateway")
        let scopeSpans = try #require(resourceSpans[0]["scopeSpans"] as? [[String: Any]])
        let spans = try #require(scopeSpans[0]["spans"] as? [[String: Any]])
        #expect(spans.count == 2)
        let s = spans[0]
        #expect(s["traceId"] as? String == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(s["spanId"] as? String == "000000000000abcd")
        #expect(s["parentSpanId"] as? String == "1122334455667788")
        #expect(spans[1]["parentSpanId"] == nil)
        #expect(s["name"] as? String == "GET /users/{user_id}")
        #expect(s["kind"] as? Int == 2)
        #expect(s["startTimeUnixNano"] as? String == "1700000000000000000")
        #expect(s["endTimeUnixNano"] as? String == "1700000000001500000")
        #expect(s["status"] == nil)
        var attributes: [String: Any] = [:]
        for a in try #require(s["attributes"] as? [[String: Any]]) {
            let value = try #require(a["value"] as? [String: Any])
            attributes[try #require(a["key"] as? String)] = value["stringValue"] ?? value["intValue"]
        }
        #expect(attributes["http.request.method"] as? String == "GET")
        #expect(attributes["http.route"] as? String == "/users/{user_id}")
        #expect(attributes["url.path"] as? String == "/users/\"7\"")
        #expect(attributes["server.address"] as? String == "127.0.0.1")
        #expect(attributes["server.port"] as? String == "8000")
        #expect(attributes["http.response.status_code"] as? String == "200")
        #expect(attributes["tapper.service"] as? String == "users")
        #expect(attributes["tapper.instance.url"] as? String == "http://127.0.0.1:9001")
        #expect(attributes["tapper.retries"] as? String == "1")
    }

    @Test func errorSpansCarryStatusAndType() throws {
        let body = OTLPJSONEncoder(serviceName: "g", scopeVersion: "1").encode([Self.span(status: 504, outcome: "upstream_timeout")])
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains(#""status":{"code":2,"message":"upstream_timeout"}"#))
        #expect(text.contains(#"{"key":"error.type","value":{"stringValue":"upstream_timeout"}}"#))
        #expect(try JSONSerialization.jsonObject(with: Data(body)) is [String: Any])
        // A 404 from the upstream is the client's error: no status on the server span.
        #expect(!String(decoding: OTLPJSONEncoder(serviceName: "g", scopeVersion: "1").encode([Self.span(status: 404)]), as: UTF8.self).contains("status\":{"))
    }

    @Test func escapesStrings() throws {
        let body = OTLPJSONEncoder(serviceName: "a\"b\\c\n\u{1}é", scopeVersion: "1").encode([SpanRecord]())
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains(#""stringValue":"a\"b\\c\u000a\u0001é""#))
        #expect(json["resourceSpans"] != nil)
    }

    @Test func splitsHosts() {
        #expect(OTLPJSONEncoder.splitHost("example.com") == ("example.com", nil))
        #expect(OTLPJSONEncoder.splitHost("example.com:8080") == ("example.com", 8080))
        #expect(OTLPJSONEncoder.splitHost("[::1]:8000") == ("::1", 8000))
        #expect(OTLPJSONEncoder.splitHost("[::1]") == ("::1", nil))
    }
}
