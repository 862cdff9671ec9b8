import Logging
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// `traceparent` on the data path: rewritten as the gateway span's child when tracing is on,
/// passed through byte for byte when it is off. (The export itself: clients/python/tests/test_tracing.py.)
@Suite struct TracingTests {
    static let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    static func tracingConfiguration(sampleRate: Double = 1) -> GatewayConfiguration {
        var settings = TraceExporter.Settings(endpoint: "http://127.0.0.1:9/")
        settings.sampleRate = sampleRate
        var config = GatewayConfiguration()
        // Not run as a service here: spans only queue (the queue is bounded).
        config.tracing = TraceExporter(settings: settings, version: "test", logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return config
    }

    func sentTraceparents(_ gw: LiveGateway, _ headers: [(String, String)]) async throws -> [String] {
        let reply = try await httpRequest(.GET, gw.url + "/users/1", headers: headers)
        #expect(reply.status == 200, "\(reply.text)")
        return values(try echo(reply).headers, "traceparent")
    }

    @Test func theUpstreamGetsTheGatewaySpanAsItsParent() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: Self.tracingConfiguration()) { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{user_id}"]))
            // A valid parent: same trace id and flags, the gateway's own span id; tracestate untouched.
            let reply = try await httpRequest(.GET, gw.url + "/users/1", headers: [("traceparent", Self.incoming), ("tracestate", "v=1,w=2")])
            let headers = try echo(reply).headers
            let sent = values(headers, "traceparent")
            #expect(sent.count == 1)
            let child = try #require(TraceParent(parsing: sent[0]))
            let parent = try #require(TraceParent(parsing: Self.incoming))
            #expect(child.traceIDHigh == parent.traceIDHigh && child.traceIDLow == parent.traceIDLow)
            #expect(child.spanID != parent.spanID && child.spanID != 0)
            #expect(child.flags == 1)
            #expect(values(headers, "tracestate") == ["v=1,w=2"])

            // None, an invalid one, or two: a new trace, sampled at rate 1.
            var traces = Set<String>()
            for headers in [
                [], [("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")], [("traceparent", "ff-" + String(repeating: "a", count: 32) + "-00f067aa0ba902b7-01")],
                [("traceparent", Self.incoming), ("traceparent", Self.incoming)],
            ] {
                let sent = try await sentTraceparents(gw, headers)
                #expect(sent.count == 1)
                let started = try #require(TraceParent(parsing: sent[0]))
                #expect(started.traceIDHex != parent.traceIDHex && started.sampled)
                traces.insert(started.traceIDHex)
            }
            #expect(traces.count == 4)
        }
    }

    /// When the gateway starts the trace and makes the request id, the two are one value: the
    /// `X-Request-ID` is the trace id's hex, and the root span's id is the trace id's low half.
    /// A caller's request id or trace keeps them apart (and the span id is random then).
    @Test func aTraceTheGatewayStartsSharesTheRequestID() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: Self.tracingConfiguration()) { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{user_id}"]))
            func sent(_ headers: [(String, String)]) async throws -> (requestID: String, trace: TraceParent) {
                let echoed = try echo(try await httpRequest(.GET, gw.url + "/users/1", headers: headers)).headers
                let ids = values(echoed, "x-request-id")
                let traces = values(echoed, "traceparent")
                #expect(ids.count == 1 && traces.count == 1)
                return (ids.first ?? "", try #require(TraceParent(parsing: traces.first ?? "")))
            }
            var seen = Set<String>()
            for _ in 0..<20 {
                let (id, trace) = try await sent([])
                #expect(id == trace.traceIDHex && trace.spanID == trace.traceIDLow && trace.sampled)
                #expect(trace.headerValue == "00-\(id)-\(id.suffix(16))-01")
                seen.insert(id)
            }
            #expect(seen.count == 20)

            let (kept, own) = try await sent([("X-Request-ID", "my-request-1")])
            #expect(kept == "my-request-1" && own.traceIDHex != kept && own.spanID != own.traceIDLow)

            let (fresh, child) = try await sent([("traceparent", Self.incoming)])
            #expect(child.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && fresh != child.traceIDHex && fresh.count == 32)
            #expect(child.spanID != child.traceIDLow && child.spanID != 0x00f0_67aa_0ba9_02b7)
        }
    }

    @Test func theCallersSamplingDecisionWins() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: Self.tracingConfiguration(sampleRate: 0)) { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{user_id}"]))
            #expect(try await sentTraceparents(gw, [("traceparent", Self.incoming)]).first?.hasSuffix("-01") == true)
            let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            #expect(try await sentTraceparents(gw, [("traceparent", unsampled)]).first?.hasSuffix("-00") == true)
            #expect(try await sentTraceparents(gw, []).first?.hasSuffix("-00") == true)
        }
    }

    @Test func withTracingOffTraceparentPassesThroughUnchanged() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{user_id}"]))
            for value in [Self.incoming, "not even close", "FF-whatever"] {
                #expect(try await sentTraceparents(gw, [("traceparent", value)]) == [value])
            }
            #expect(try await sentTraceparents(gw, []) == [])
        }
    }
}
