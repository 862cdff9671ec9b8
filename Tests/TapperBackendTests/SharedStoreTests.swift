import Foundation
import Testing
import TapperCore
import TapperRegistry
import TapperTesting

/// Registries and gateways sharing one real Redis or etcd over HTTP, as operators run them.
@Suite(.serialized) struct SharedStoreTests {
    static let body = jsonBody(["url": "http://127.0.0.1:9001", "routes": [["methods": ["GET"], "path": "/users/{id}"]], "ttl_seconds": 30])

    @Test(arguments: BackendKind.shared)
    func twoRegistriesOnOneStoreShareRegistrationsAndRouteOwnership(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.withPeer { peer in
                try await withLiveRegistry(backend: h.backend) { one, _ in
                    try await withLiveRegistry(backend: peer) { two, _ in
                        #expect(try await httpRequest(.PUT, "\(one)/v1/services/users/instances/a", body: Self.body).status == 201)
                        let seen = try await httpRequest(.GET, "\(two)/v1/services/users")
                        #expect(seen.status == 200)
                        #expect(seen.text.contains("\"instance_id\":\"a\""))
                        // The other registry refuses a second owner of the route, naming the first.
                        let clash = try await httpRequest(.PUT, "\(two)/v1/services/orders/instances/x", body: Self.body)
                        #expect(clash.status == 409)
                        #expect(clash.errorMessage?.contains("users") == true)
                        // A blocking query on one registry wakes for a change made through the other.
                        let index = try #require(seen.headers.first(name: "X-Tapper-Index").flatMap({ UInt64($0) }))
                        async let blocked = httpRequest(.GET, "\(one)/v1/catalog?index=\(index)&wait=20s", timeout: .seconds(30))
                        #expect(try await httpRequest(.DELETE, "\(two)/v1/services/users/instances/a").status == 204)
                        let woke = try await blocked
                        #expect(!woke.text.contains("\"instance_id\":\"a\""))
                    }
                }
            }
        }
    }

    @Test(arguments: BackendKind.shared)
    func storeDownAnswers503OnWritesAndStaleReadsThenRecoversWithoutRestart(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await withLiveRegistry(backend: h.backend) { url, _ in
                #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Self.body).status == 201)
                try await h.server!.kill()
                let refused = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/b", body: Self.body)
                #expect(refused.status == 503)
                #expect(refused.errorMessage?.contains(h.backend.displayName) == true, "\(refused.text)")
                let read = try await httpRequest(.GET, "\(url)/v1/catalog")
                #expect(read.status == 200)
                #expect(try read.json()["stale"] as? Bool == true)
                #expect(read.text.contains("\"instance_id\":\"a\""))
                let health = try await httpRequest(.GET, "\(url)/v1/health").json()
                #expect((health["backend"] as? [String: Any])?["status"] as? String == "stale", "\(health)")
                try await h.server!.start()
                try await poll("writes work again", timeout: .seconds(20), every: .milliseconds(50)) {
                    try await httpRequest(.PUT, "\(url)/v1/services/users/instances/b", body: Self.body).status == 201
                }
                let fresh = try await httpRequest(.GET, "\(url)/v1/catalog")
                #expect(try fresh.json()["stale"] == nil)
            }
        }
    }

    /// `tapper registry serve --backend etcd://…` and `tapper gateway serve --registry etcd://…`
    /// as separate processes: the gateway reads the store directly and routes to a real upstream,
    /// keeps routing while the store is down, and follows changes again when it returns.
    @Test(arguments: BackendKind.shared)
    func gatewayReadingTheStoreRoutesToARealUpstream(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let server = h.server!
            let up = try await FakeUpstream(name: "users-1")
            let registry = try TapperProcess(["registry", "serve", "--port", "0", "--backend", server.url])
            let gateway = try TapperProcess(["gateway", "serve", "--port", "0", "--registry", server.url, "--no-access-log", "--no-health-checks"])
            defer {
                registry.signal(SIGKILL)
                gateway.signal(SIGKILL)
            }
            let registryPort = try await registry.waitForListeningPort("registry listening on http://")
            let gatewayPort = try await gateway.waitForListeningPort("gateway listening on http://")
            let registryURL = "http://127.0.0.1:\(registryPort)"
            let gatewayURL = "http://127.0.0.1:\(gatewayPort)"
            #expect(gateway.stderr.contains("reads the registry store"))
            let r = try await TapperProcess.run(["service", "register", "users", "--url", up.url, "--registry", registryURL, "--route", "GET /users/{id}"])
            #expect(r.status == 0, "\(r.stderr)")
            try await poll("the gateway routes /users/1", timeout: .seconds(15)) { try await httpRequest(.GET, gatewayURL + "/users/1").status == 200 }
            let reply = try await httpRequest(.GET, gatewayURL + "/users/7")
            #expect(reply.headers.first(name: "X-Upstream") == "users-1")

            try await server.kill()
            #expect(try await httpRequest(.GET, gatewayURL + "/users/2").status == 200, "the last known table keeps routing")
            try await poll("the gateway's status shows the table as stale", timeout: .seconds(20), every: .milliseconds(100)) {
                let status = try await httpRequest(.GET, gatewayURL + "/_tapper/status").json()
                return (status["gateway"] as? [String: Any])?["stale"] as? Bool == true
            }
            #expect(try await httpRequest(.GET, gatewayURL + "/users/3").status == 200)
            try await server.start()
            let orders = try await FakeUpstream(name: "orders-1")
            try await poll("registrations work again", timeout: .seconds(20), every: .milliseconds(100)) {
                try await TapperProcess.run(["service", "register", "orders", "--url", orders.url, "--registry", registryURL, "--route", "GET /orders/{id}"]).status == 0
            }
            try await poll("the gateway follows the store again", timeout: .seconds(20)) {
                try await httpRequest(.GET, gatewayURL + "/orders/1").status == 200
            }
            try await poll("the gateway's status is fresh again", timeout: .seconds(20), every: .milliseconds(100)) {
                let status = try await httpRequest(.GET, gatewayURL + "/_tapper/status").json()
                return (status["gateway"] as? [String: Any])?["stale"] as? Bool == false
            }
            await up.stop()
            await orders.stop()
            await registry.stop()
            await gateway.stop()
        }
    }
}
