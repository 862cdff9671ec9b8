import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TapperTesting

/// A lazily generated body: the same chunk `count` times, so the client holds one chunk only.
struct RepeatedBody: AsyncSequence, Sendable {
    let chunk: ByteBuffer
    let count: Int
    struct AsyncIterator: AsyncIteratorProtocol {
        let chunk: ByteBuffer
        var left: Int
        mutating func next() async -> ByteBuffer? {
            guard left > 0 else { return nil }
            left -= 1
            return chunk
        }
    }
    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(chunk: chunk, left: count) }
}

/// Peak resident memory of a process, from /proc.
func peakRSSMiB(_ pid: Int32) -> Double? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
        return kb.map { $0 / 1024 }
    }
    return nil
}

@Suite(.serialized) struct GatewayCLITests {
    func startGateway(_ extra: [String] = []) async throws -> (TapperProcess, gateway: String, registry: String) {
        let p = try TapperProcess(["gateway", "serve", "--port", "0", "--registry-port", "0", "--no-access-log"] + extra)
        let registryPort = try await p.waitForListeningPort("embedded registry listening on http://")
        let gatewayPort = try await p.waitForListeningPort("gateway listening on http://")
        return (p, "http://127.0.0.1:\(gatewayPort)", "http://127.0.0.1:\(registryPort)")
    }

    func register(_ registry: String, _ service: String, _ upstream: FakeUpstream, _ routes: [String]) async throws {
        let r = try await TapperProcess.run(["service", "register", service, "--url", upstream.url, "--registry", registry] + routes.flatMap { ["--route", $0] })
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test func sigtermLetsSlowInFlightRequestsFinish() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let (gw, url, registry) = try await startGateway(["--drain-timeout", "10"])
        defer { gw.signal(SIGKILL) }
        try await register(registry, "slow", up, ["GET /slow/{ms:int}"])
        try await poll("the route is live") { try await httpRequest(.GET, url + "/slow/1").status == 200 }
        async let a = httpRequest(.GET, url + "/slow/1500", timeout: .seconds(20))
        async let b = httpRequest(.GET, url + "/slow/1200", timeout: .seconds(20))
        try await poll("both requests reached the instance") { up.inFlight == 2 }
        gw.signal(SIGTERM)
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 200 && rb.status == 200)
        #expect(try await gw.waitForExit(timeout: .seconds(15)) == 0)
        // New connections are refused once the listener closed.
        await #expect(throws: (any Error).self) { _ = try await httpRequest(.GET, url + "/slow/1", timeout: .seconds(2)) }
    }

    @Test func accessLogHasOneLogfmtLinePerRequest() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let p = try TapperProcess(["gateway", "serve", "--port", "0", "--registry-port", "0"])
        defer { p.signal(SIGKILL) }
        let registryPort = try await p.waitForListeningPort("embedded registry listening on http://")
        let gatewayPort = try await p.waitForListeningPort("gateway listening on http://")
        try await register("http://127.0.0.1:\(registryPort)", "users", up, ["GET /users/{id}"])
        try await poll("the route is live") { try await httpRequest(.GET, "http://127.0.0.1:\(gatewayPort)/users/7", headers: [("X-Request-ID", "log-me")]).status == 200 }
        let line = try await p.waitForOutput { out, _ in out.split(separator: "\n").first { $0.contains("request_id=log-me") }.map(String.init) }
        for field in ["method=GET", "path=/users/7", "status=200", "service=users", "route=/users/{id}", "duration_ms="] {
            #expect(line.contains(field), "\(line)")
        }
        await p.stop()
    }

    @Test func oneGibibyteUpAndDownWithFlatGatewayMemory() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let (gw, url, registry) = try await startGateway()
        defer { gw.signal(SIGKILL) }
        try await register(registry, "files", up, ["GET /bytes/{n:int}", "PUT /upload"])
        try await poll("the route is live") { try await httpRequest(.GET, url + "/bytes/10").status == 200 }
        let size = 1 << 30

        // Download, counted as it streams.
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + "/bytes/\(size)"), timeout: .seconds(300))
        var received = 0
        for try await part in response.body { received += part.readableBytes }
        #expect(received == size)

        // Upload, generated lazily.
        var request = HTTPClientRequest(url: url + "/upload")
        request.method = .PUT
        let chunk = ByteBuffer(repeating: UInt8(ascii: "u"), count: 1 << 16)
        request.body = .stream(RepeatedBody(chunk: chunk, count: size >> 16), length: .known(Int64(size)))
        let put = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
        let echoed = try await put.body.collect(upTo: 1 << 20)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(echoed.readableBytesView)) as? [String: Any])
        #expect(object["body_bytes"] as? Int == size)

        let peak = try #require(peakRSSMiB(gw.pid))
        #expect(peak < 200, "gateway peak RSS was \(peak) MiB while moving 2 GiB")
        await gw.stop()
    }
}
