import Foundation
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// Health view that marks everything down, to produce 503.
struct NothingHealthy: HealthView {
    func routable(_ targets: [UpstreamTarget]) -> [UpstreamTarget] { [] }
}

@Suite struct ErrorStatusTests {
    @Test func notFoundAndMethodNotAllowedInTheErrorShape() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{id}", "DELETE /users/{id:int}"]))
            let missing = try await httpRequest(.GET, gw.url + "/nope")
            #expect(missing.status == 404)
            #expect((try missing.json()["error"] as? [String: Any])?["code"] as? String == "not_found")
            let wrong = try await httpRequest(.POST, gw.url + "/users/5")
            #expect(wrong.status == 405)
            #expect(wrong.headers.first(name: "Allow") == "DELETE, GET, HEAD")
            #expect(up.requestCount == 0)
        }
    }

    @Test func noHealthyInstanceIs503WithRetryAfter() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway(health: NothingHealthy()) { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{id}"]))
            let reply = try await httpRequest(.GET, gw.url + "/users/1")
            #expect(reply.status == 503)
            #expect(reply.headers.first(name: "Retry-After") != nil)
        }
    }

    @Test func unreachableInstanceIs502() async throws {
        let up = try await FakeUpstream()
        let port = up.port
        await up.stop()
        try await withLiveGateway { gw in
            try await gw.register("users", "a", ServiceRegistration(url: "http://127.0.0.1:\(port)", routes: [RouteSpec(methods: ["GET"], path: "/users/{id}")]))
            let reply = try await httpRequest(.GET, gw.url + "/users/1")
            #expect(reply.status == 502, "\(reply.text)")
            #expect(reply.headers.first(name: "X-Request-ID") != nil)
        }
    }

    @Test func instanceClosingWithoutAnswerIs502() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "a", registration(up, ["POST /close"]))
            let reply = try await httpRequest(.POST, gw.url + "/close", body: Data("x".utf8))
            #expect(reply.status == 502)
        }
    }

    @Test func slowInstanceIs504AtTheTimeout() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        var config = GatewayConfiguration()
        config.upstreamTimeout = .milliseconds(300)
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("users", "a", registration(up, ["GET /hang", "GET /slow/{ms:int}"]))
            let t0 = ContinuousClock.now
            let reply = try await httpRequest(.GET, gw.url + "/hang")
            let waited = ContinuousClock.now - t0
            #expect(reply.status == 504)
            #expect(waited >= .milliseconds(250) && waited < .seconds(3), "\(waited)")
            // A response within the timeout passes.
            #expect(try await httpRequest(.GET, gw.url + "/slow/50").status == 200)
        }
    }

    @Test func oversizedAndMalformedRequestsGetTheRight4xxAndOthersAreStillServed() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        var config = GatewayConfiguration()
        config.maxBodyBytes = 1000
        config.maxHeaderBytes = 4096
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("users", "a", registration(up, ["POST /users/", "GET /users/{id}"]))
            let cases: [(String, Int)] = [
                ("GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 6000))\r\n\r\n", 431),
                ("GET /users/\(String(repeating: "a", count: 9000)) HTTP/1.1\r\nHost: x\r\n\r\n", 414),
                ("POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
                ("POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
                ("POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
                ("GET /users/../admin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                ("GET /users/a%2F..%2Fadmin HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                ("GARBAGE\r\n\r\n", 400),
            ]
            for (request, status) in cases {
                let raw = try await RawHTTP.exchange(port: gw.port, [request])
                #expect(raw.status == status, "\(request.prefix(60)): \(raw.text.prefix(200))")
            }
            // Streaming body over the limit (chunked, no length) is cut with 413.
            let chunks = "POST /users/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: "100\r\n\(String(repeating: "z", count: 256))\r\n", count: 8) + "0\r\n\r\n"
            let streamed = try await RawHTTP.exchange(port: gw.port, [chunks])
            #expect(streamed.status == 413, "\(streamed.text.prefix(200))")
            // None of the bad requests reached the upstream, and good ones still work.
            #expect(up.paths.allSatisfy { !$0.contains("admin") })
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
        }
    }

    /// Smuggling and hostile header bytes: each is refused with 400 and the connection closed,
    /// the upstream never sees any of them, and the next client is served normally.
    @Test func smugglingAndHostileHeaderBytesAre400AndClosed() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "a", registration(up, ["POST /users/", "GET /users/{id}"]))
            let cases: [(String, String)] = [
                ("CL+TE", "POST /users/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"),
                ("conflicting lengths in one header", "POST /users/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!"),
                ("invalid chunk size", "POST /users/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
                ("obs-fold", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n"),
                ("bare LF", "GET /users/1 HTTP/1.1\nHost: x\n\n"),
                ("NUL in a value", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n"),
                ("control byte in a name", "GET /users/1 HTTP/1.1\r\nHost: x\r\nX\u{1}A: b\r\n\r\n"),
                ("space before the colon", "GET /users/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"),
            ]
            for (name, request) in cases {
                let raw = try await RawHTTP.exchange(port: gw.port, [request])
                #expect(raw.status == 400, "\(name): \(raw.text.prefix(200))")
                #expect(raw.closed, "\(name): the connection must be closed")
            }
            #expect(up.requestCount == 0, "a refused request reached the upstream")
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
        }
    }

    @Test func slowHeadersGet408WhileOthersAreServed() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        var config = GatewayConfiguration()
        config.headerReadTimeout = .milliseconds(300)
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{id}"]))
            async let slow = RawHTTP.exchange(port: gw.port, ["GET /users/1 HTTP/1.1\r\n", "Host: x\r\n"], pause: .milliseconds(200), timeout: .seconds(3))
            #expect(try await httpRequest(.GET, gw.url + "/users/2").status == 200)
            let result = try await slow
            #expect(result.status == 408, "\(result.text)")
            #expect(result.closed)
        }
    }
}
