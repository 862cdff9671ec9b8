import Foundation
import Logging
import ServiceLifecycle
import Testing
import TapperClient
import TapperCore
import TapperGateway
import TapperRegistry
import TapperTesting

@Suite struct DiscoveryTests {
    /// Runs a registry on a fixed port until `stop` is called.
    final class Registry: Sendable {
        let group: ServiceGroup
        let task: Task<Void, any Error>
        init(port: Int, backend: MemoryBackend) async throws {
            var logger = Logger(label: "t")
            logger.logLevel = .critical
            let (ports, c) = AsyncStream.makeStream(of: Int.self)
            let app = RegistryServer(backend: backend, configuration: .init(port: port)).application(logger: logger) { c.yield($0) }
            let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
            self.group = group
            task = Task { try await group.run() }
            var it = ports.makeAsyncIterator()
            _ = await it.next()
        }
        func stop() async {
            await group.triggerGracefulShutdown()
            _ = try? await task.value
        }
    }

    @Test func keepsRoutingWhileTheRegistryIsDownAndCatchesUpWhenItReturns() async throws {
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let backend = try MemoryBackend(logger: logger)
        // Find a free port by letting the first registry pick one.
        let first = try await Registry(port: 0, backend: backend)
        await first.stop()
        let probe = try await FakeUpstream()
        let port = probe.port
        await probe.stop()
        let first2 = try await Registry(port: port, backend: backend)
        let url = "http://127.0.0.1:\(port)"
        let client = RegistryClient(baseURL: url)
        _ = try await client.register(service: "users", instanceID: "a", registration: registration(up, ["GET /users/{id}"]))
        try await withLiveGateway(registryURL: url) { gw in
            try await poll("the gateway routes /users") { try await httpRequest(.GET, gw.url + "/users/1").status == 200 }
            await first2.stop()
            try await poll("the gateway notices the registry is gone") { !gw.gateway.state.discoveryStatus.reachable }
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
            let status = try await httpRequest(.GET, gw.url + "/_tapper/status").json()
            #expect((status["gateway"] as? [String: Any])?["stale"] as? Bool == true)

            let second = try await Registry(port: port, backend: backend)
            defer { Task { await second.stop() } }
            _ = try await client.register(service: "orders", instanceID: "a", registration: registration(up, ["GET /orders/{id}"]))
            try await poll("the change after the restart is routable", timeout: .seconds(15)) {
                try await httpRequest(.GET, gw.url + "/orders/1").status == 200
            }
            #expect(gw.gateway.state.discoveryStatus.reachable)
            await second.stop()
        }
    }

    @Test func adminEndpointsDescribeTheTable() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "a", registration(up, ["GET /users/{id}", "POST /users/"]))
            let health = try await httpRequest(.GET, gw.url + "/health").json()
            #expect(health["status"] as? String == "healthy")
            #expect(((health["services"] as? [String: Any])?["users"] as? [String: Any])?["status"] as? String == "healthy")
            let routes = try await httpRequest(.GET, gw.url + "/_tapper/routes").json()
            let list = try #require(routes["routes"] as? [[String: Any]])
            #expect(list.map { $0["template"] as? String } == ["/users/", "/users/{id}"])
            let status = try await httpRequest(.GET, gw.url + "/_tapper/status").json()
            let services = try #require(status["services"] as? [[String: Any]])
            #expect(services.first?["healthy"] as? Int == 1)
            for i in 0..<3 { _ = try await httpRequest(.GET, gw.url + "/users/\(i)") }
            let metrics = try await httpRequest(.GET, gw.url + "/_tapper/metrics").text
            #expect(metrics.contains("tapper_requests_in_flight"))
            #expect(metrics.contains("tapper_open_connections"))
            let requestLines = metrics.split(separator: "\n").filter { $0.hasPrefix("tapper_requests_total{") }
            // Labelled by the route template, never the raw path.
            let line = try #require(requestLines.first { $0.contains(#"route="/users/{id}""#) }, "\(metrics)")
            #expect(line.contains(#"status="2xx""#) && line.contains(#"method="GET""#) && line.contains(#"service="users""#))
            #expect(line.hasSuffix(" 3"))
            #expect(!metrics.contains("/users/1"))
            // The latency histogram (recorded per I/O thread, summed here): every bucket is
            // cumulative, +Inf and _count are the 3 requests, and the sum is their total time.
            let latency = metrics.split(separator: "\n").filter { $0.hasPrefix("tapper_upstream_duration_seconds") }
            func value(_ line: Substring) -> Double { Double(line.split(separator: " ").last ?? "") ?? -1 }
            let buckets = latency.filter { $0.hasPrefix(#"tapper_upstream_duration_seconds_bucket{service="users",le=""#) }
            #expect(buckets.count == 15, "\(latency)")
            #expect(buckets.first?.contains(#"le="0.00025""#) == true && buckets.dropLast().last?.contains(#"le="10.0""#) == true, "\(buckets)")
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { value($0) <= value($1) }, "\(buckets)")
            #expect(buckets.last.map(value) == 3 && buckets.last?.contains(#"le="+Inf""#) == true, "\(buckets)")
            #expect(latency.first { $0.hasPrefix(#"tapper_upstream_duration_seconds_count{service="users"}"#) }.map(value) == 3, "\(latency)")
            let sum = latency.first { $0.hasPrefix(#"tapper_upstream_duration_seconds_sum{service="users"}"#) }.map(value) ?? -1
            #expect(sum > 0 && sum < 30, "\(latency)")
            #expect(metrics.contains("# TYPE tapper_upstream_duration_seconds histogram"))
        }
    }
}
