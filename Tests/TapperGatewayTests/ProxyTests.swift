import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TapperCore
import TapperGateway
import TapperTesting

func registration(_ upstream: FakeUpstream, _ routes: [String], prefix: String = "") throws -> ServiceRegistration {
    ServiceRegistration(url: upstream.url, prefix: prefix, routes: try routes.map { try RouteSpec(parsingCLI: $0) })
}

func echo(_ reply: HTTPReply) throws -> (uri: String, headers: [(String, String)], bodyBytes: Int, bodyHash: String, server: String) {
    let o = try reply.json()
    let headers = (o["headers"] as? [[String]] ?? []).map { ($0[0], $0[1]) }
    return (o["uri"] as? String ?? "", headers, o["body_bytes"] as? Int ?? -1, o["body_hash"] as? String ?? "", o["server"] as? String ?? "")
}

func values(_ headers: [(String, String)], _ name: String) -> [String] {
    headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
}

@Suite struct ProxyTests {
    @Test func pathParametersAndRawQueryArriveByteExact() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{item_id}", "GET /files/{rest:path}"]))
            for target in ["/items/a%20b?q=1&q=2&x=%2F&y=%E2%9C%93&empty=&flag", "/items/%C3%A9t%C3%A9?a=b+c", "/files/x/y.z?", "/items/42"] {
                let reply = try await httpRequest(.GET, gw.url + target)
                #expect(reply.status == 200, "\(target): \(reply.text)")
                #expect(try echo(reply).uri == target)
            }
        }
    }

    @Test func adminEndpointsNeedTheAdminTokenAndItRotates() async throws {
        final class Box: @unchecked Sendable {
            let lock = NSLock()
            var value = "first-token"
            var current: String { lock.withLock { value } }
        }
        let token = Box()
        var config = GatewayConfiguration()
        config.adminToken = { token.current }
        try await withLiveGateway(configuration: config) { gw in
            // /health stays open for probes.
            #expect(try await httpRequest(.GET, gw.url + "/health").status == 200)
            for path in ["/_tapper/status", "/_tapper/routes", "/_tapper/metrics"] {
                let anonymous = try await httpRequest(.GET, gw.url + path)
                #expect(anonymous.status == 401, "\(path)")
                #expect(anonymous.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
                #expect(try await httpRequest(.GET, gw.url + path, headers: [("Authorization", "Bearer wrong")]).status == 401)
                #expect(try await httpRequest(.GET, gw.url + path, headers: [("Authorization", "Bearer first-token")]).status == 200)
            }
            // Rotation: the old token stops working at once, the new one works.
            token.lock.withLock { token.value = "second-token" }
            let old = try await httpRequest(.GET, gw.url + "/_tapper/status", headers: [("Authorization", "Bearer first-token")])
            #expect(old.status == 401)
            #expect(!old.text.contains("second-token") && !old.text.contains("first-token"), "no token in the error")
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/status", headers: [("Authorization", "Bearer second-token")]).status == 200)
        }
    }

    @Test func forwardedHeadersAreBelievedOnlyFromTrustedProxies() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let request = [
            "GET /items/1 HTTP/1.1\r\nHost: inner.example\r\nX-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n",
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\nConnection: close\r\n\r\n",
        ].joined()
        @Sendable func forwarded(_ gw: LiveGateway) async throws -> [String: [String]] {
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let raw = try await RawHTTP.exchange(port: gw.port, [request])
            let bodyStart = try #require(raw.text.range(of: "\r\n\r\n"))
            let h = try echo(HTTPReply(status: 200, headers: [:], body: Data(raw.text[bodyStart.upperBound...].utf8))).headers
            return ["for": values(h, "x-forwarded-for"), "proto": values(h, "x-forwarded-proto"), "host": values(h, "x-forwarded-host")]
        }
        // Nobody is trusted by default: a client cannot forge its address, scheme or host.
        try await withLiveGateway { gw in
            let h = try await forwarded(gw)
            #expect(h["for"] == ["127.0.0.1"])
            #expect(h["proto"] == ["http"])
            #expect(h["host"] == ["inner.example"])
        }
        // A trusted proxy's chain is kept and extended.
        var trusting = GatewayConfiguration()
        trusting.trustedProxies = [try CIDR(parsing: "10.0.0.0/8"), try CIDR(parsing: "127.0.0.0/8")]
        try await withLiveGateway(configuration: trusting) { gw in
            let h = try await forwarded(gw)
            #expect(h["for"] == ["203.0.113.7, 198.51.100.2, 127.0.0.1"])
            #expect(h["proto"] == ["https"])
            #expect(h["host"] == ["public.example"])
        }
    }

    @Test func headersPassHopByHopAreStrippedAndForwardedHeadersAreSet() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let request = [
                "GET /items/1 HTTP/1.1\r\nHost: api.example\r\nX-Custom: one\r\nX-Custom: two\r\nX-Multi: a, b\r\n",
                "Connection: keep-alive, X-Secret, X-Forwarded-For\r\nX-Secret: hidden\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n",
                "Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Forwarded-For: 203.0.113.7\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
                "X-Request-ID: abc-123\r\nConnection: close\r\n\r\n",
            ].joined()
            let raw = try await RawHTTP.exchange(port: gw.port, [request])
            #expect(raw.status == 200, "\(raw.text)")
            let bodyStart = try #require(raw.text.range(of: "\r\n\r\n"))
            let responseHead = String(raw.text[..<bodyStart.lowerBound]).lowercased()
            let reply = HTTPReply(status: 200, headers: [:], body: Data(raw.text[bodyStart.upperBound...].utf8))
            let h = try echo(reply).headers
            #expect(values(h, "x-custom") == ["one", "two"])
            #expect(values(h, "x-multi") == ["a, b"])
            #expect(values(h, "host") == ["api.example"])
            #expect(values(h, "traceparent").count == 1)
            for hop in ["connection", "x-secret", "keep-alive", "te", "proxy-authorization"] {
                #expect(values(h, hop).isEmpty, "\(hop) must not reach the upstream")
            }
            // A client naming X-Forwarded-For in Connection cannot remove the gateway's own, and
            // an untrusted client's own X-Forwarded-For is replaced by its address.
            #expect(values(h, "x-forwarded-for") == ["127.0.0.1"])
            #expect(values(h, "x-forwarded-proto") == ["http"])
            #expect(values(h, "x-forwarded-host") == ["api.example"])
            #expect(values(h, "x-request-id") == ["abc-123"])
            #expect(responseHead.contains("x-request-id: abc-123"))
            #expect(responseHead.contains("x-tapper-instance: items/a"))
            #expect(responseHead.contains("x-upstream: a"))
            #expect(!responseHead.contains("x-upstream-private"), "a header the upstream named in Connection leaked")
            #expect(raw.closed, "Connection: close from the client must close the connection")

            // Without X-Request-ID the gateway generates one and returns it.
            let generated = try await httpRequest(.GET, gw.url + "/items/2")
            let sent = values(try echo(generated).headers, "x-request-id")
            #expect(sent.count == 1 && sent[0].count == 32)
            #expect(generated.headers.first(name: "X-Request-ID") == sent.first)
        }
    }

    @Test func requestBodiesArriveIntact() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["POST /items/", "PUT /items/{id}"]))
            // Empty and small bodies.
            for body in [Data(), Data("{\"name\": \"Jane Doe\", \"tags\": [1, 2]}".utf8)] {
                let reply = try await httpRequest(.POST, gw.url + "/items/", body: body, headers: [("Content-Type", "application/json")])
                let e = try echo(reply)
                #expect(e.bodyBytes == body.count)
                #expect(e.bodyHash == fnv1a(body))
            }
            // A chunked body, written by hand.
            let chunked = "PUT /items/7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            let raw = try await RawHTTP.exchange(port: gw.port, [chunked])
            #expect(raw.status == 200, "\(raw.text)")
            #expect(raw.text.contains("\"body_bytes\":11"))
            #expect(raw.text.contains("\"body_hash\":\"\(fnv1a(Array("hello world".utf8)))\""))
            // 100 MiB streamed in 64 KiB pieces.
            let chunk = [UInt8]((0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            let count = 1600
            var expected = Data()
            expected.reserveCapacity(chunk.count * count)
            for _ in 0..<count { expected.append(contentsOf: chunk) }
            var request = HTTPClientRequest(url: gw.url + "/items/big")
            request.method = .PUT
            let pieces = AsyncStream<ByteBuffer> { c in
                for _ in 0..<count { c.yield(ByteBuffer(bytes: chunk)) }
                c.finish()
            }
            request.body = .stream(pieces, length: .known(Int64(chunk.count * count)))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            let body = try await response.body.collect(upTo: 1 << 20)
            let e = try echo(HTTPReply(status: Int(response.status.code), headers: response.headers, body: Data(body.readableBytesView)))
            #expect(e.bodyBytes == chunk.count * count)
            #expect(e.bodyHash == fnv1a(expected))
        }
    }

    @Test func responsesStreamWithTheirFraming() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("files", "a", registration(up, ["GET /bytes/{n:int}", "GET /chunked", "HEAD /bytes/{n:int}"]))
            let big = try await httpRequest(.GET, gw.url + "/bytes/52428800", timeout: .seconds(60))
            #expect(big.body.count == 52_428_800)
            let chunked = try await RawHTTP.exchange(port: gw.port, ["GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            #expect(chunked.text.lowercased().contains("transfer-encoding: chunked"))
            #expect(chunked.text.contains("one,"))
            let head = try await RawHTTP.exchange(port: gw.port, ["HEAD /bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            #expect(head.status == 200)
            #expect(head.text.hasSuffix("\r\n\r\n"), "a HEAD response has no body")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}", "GET /slow/{ms:int}"]))
            let three = "GET /slow/100 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /items/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let raw = try await RawHTTP.exchange(port: gw.port, [three])
            let text = raw.text.replacingOccurrences(of: "\\/", with: "/")
            let first = try #require(text.range(of: "\"uri\":\"/slow/100\""))
            let second = try #require(text.range(of: "\"uri\":\"/items/2\""))
            let third = try #require(text.range(of: "\"uri\":\"/items/3\""))
            #expect(first.lowerBound < second.lowerBound && second.lowerBound < third.lowerBound)
            #expect(raw.text.components(separatedBy: "HTTP/1.1 200").count == 4)
        }
    }

    /// Each I/O thread reuses the buffers of heads it built 1,024 heads earlier (HeadBuffers):
    /// enough requests for every ring to wrap, on concurrent keep-alive connections with heads
    /// of varying sizes, and each request and response must still carry only its own bytes.
    @Test func recycledHeadBuffersNeverMixRequests() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let url = gw.url
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for i in 0..<375 {
                            let id = "w\(worker)-r\(i)"
                            let pad = String(repeating: "p", count: (i * 37 + worker * 101) % 900)
                            let target = "/items/\(id)?n=\(i)"
                            let reply = try await httpRequest(.GET, url + target, headers: [("X-Request-ID", id), ("X-Pad", pad)])
                            #expect(reply.status == 200, "\(id): \(reply.text)")
                            #expect(reply.headers["X-Request-ID"] == [id])
                            let seen = try echo(reply)
                            #expect(seen.uri == target)
                            #expect(values(seen.headers, "X-Request-ID") == [id])
                            #expect(values(seen.headers, "X-Pad") == [pad])
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(up.requestCount >= 3000)
        }
    }

    @Test func theServicePrefixIsRemovedBeforeForwarding() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("orders", "a", registration(up, ["GET /orders/{id}", "GET /"], prefix: "/api/v2"))
            #expect(try echo(try await httpRequest(.GET, gw.url + "/api/v2/orders/9?x=1")).uri == "/orders/9?x=1")
            #expect(try echo(try await httpRequest(.GET, gw.url + "/api/v2/")).uri == "/")
            #expect(try await httpRequest(.GET, gw.url + "/orders/9").status == 404)
        }
    }

    @Test func aRegistryChangeBecomesRoutableWithoutARestart() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        try await withLiveGateway { gw in
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 404)
            try await gw.register("users", "a", registration(a, ["GET /users/{id:int}"]))
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
            try await gw.register("orders", "b", registration(b, ["GET /orders/{id}"]))
            #expect(try echo(try await httpRequest(.GET, gw.url + "/orders/1")).server == "b")
            try await gw.deregister("users", "a")
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 404)
        }
    }

    @Test func roundRobinSharesTrafficBetweenInstances() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        try await withLiveGateway(configuration: { var c = GatewayConfiguration(); c.threads = 1; return c }()) { gw in
            try await gw.register("users", "a", registration(a, ["GET /users/{id}"]))
            try await gw.register("users", "b", registration(b, ["GET /users/{id}"]))
            for i in 0..<20 { _ = try await httpRequest(.GET, gw.url + "/users/\(i)") }
            #expect(a.requestCount == 10 && b.requestCount == 10, "a=\(a.requestCount) b=\(b.requestCount)")
        }
    }
}
