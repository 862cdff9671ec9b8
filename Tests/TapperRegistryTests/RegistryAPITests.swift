import Foundation
import Logging
import Testing
import TapperCore
import TapperRegistry
import TapperTesting

@Suite struct RegistryAPITests {
    static var registration: [String: Any] {
        [
            "url": "http://127.0.0.1:9001",
            "version": "1.0.0",
            "routes": [["methods": ["GET"], "path": "/users/{user_id}"], ["methods": ["POST"], "path": "/users/"]],
            "ttl_seconds": 30,
        ]
    }

    @Test func registerThenUpdateThenList() async throws {
        try await withLiveRegistry { url, _ in
            let put = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: jsonBody(Self.registration))
            #expect(put.status == 201)
            let record = try put.json()
            #expect(record["instance_id"] as? String == "a")
            #expect(record["index"] as? Int == 1)
            #expect(put.headers.first(name: "X-Tapper-Index") == "1")

            let changed = jsonBody(Self.registration.merging(["version": "1.1.0"]) { $1 })
            let update = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: changed)
            #expect(update.status == 200)
            #expect(try update.json()["version"] as? String == "1.1.0")

            let list = try await httpRequest(.GET, "\(url)/v1/services")
            let services = try #require(try list.json()["services"] as? [[String: Any]])
            #expect(services.count == 1)
            #expect(services[0]["name"] as? String == "users")
            #expect(services[0]["instance_count"] as? Int == 1)
            #expect(services[0]["route_count"] as? Int == 2)

            let one = try await httpRequest(.GET, "\(url)/v1/services/users")
            #expect(one.status == 200)
            let missing = try await httpRequest(.GET, "\(url)/v1/services/nobody")
            #expect(missing.status == 404)
            #expect(missing.errorMessage?.contains("nobody") == true)
        }
    }

    @Test func heartbeatAndDelete() async throws {
        try await withLiveRegistry { url, _ in
            _ = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: jsonBody(Self.registration))
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a/heartbeat").status == 200)
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/zz/heartbeat").status == 404)
            #expect(try await httpRequest(.DELETE, "\(url)/v1/services/users/instances/a").status == 204)
            #expect(try await httpRequest(.DELETE, "\(url)/v1/services/users/instances/a").status == 404)
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a/heartbeat").status == 404)
        }
    }

    @Test func expiryRemovesTheInstance() async throws {
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let backend = try MemoryBackend(sweepInterval: .milliseconds(20), logger: logger)
        var reg = Self.registration
        reg["ttl_seconds"] = 1
        let body = jsonBody(reg)
        try await withLiveRegistry(backend: backend) { url, _ in
            // Timed from before the registration: the instance must live its full second.
            let started = ContinuousClock.now
            let put = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: body)
            let index = try #require(try put.json()["index"] as? Int)
            // The blocking query returns as soon as the sweeper removes the instance.
            let after = try await httpRequest(.GET, "\(url)/v1/catalog?index=\(index)&wait=10s")
            let waited = ContinuousClock.now - started
            #expect(try (after.json()["services"] as? [Any])?.isEmpty == true)
            #expect(waited >= .milliseconds(990) && waited < .seconds(5), "\(waited)")
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a/heartbeat").status == 404)
        }
    }

    @Test(arguments: [
        ("Bad_Name", "a", #"{"url": "http://127.0.0.1:1"}"#, "service"),
        ("users", "a%2Fb", #"{"url": "http://127.0.0.1:1"}"#, "instance_id"),
        ("users", "a", #"{"url": "ftp://x"}"#, "url"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "routes": [{"path": "/users/{id"}]}"#, "routes[0].path"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "version": "1\r\nX-Injected: 1"}"#, "version"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "ttl_seconds": "ten"}"#, "ttl_seconds"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "colour": "red"}"#, "colour"),
        ("users", "a", #"{"version": "1"}"#, "url"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "routes": [{"path": "/_tapper/routes"}]}"#, "routes[0].path"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "routes": [{"path": "/a", "methods": "GET"}]}"#, "routes[0].methods"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "tags": [1]}"#, "tags[0]"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "weight": 1.5}"#, "weight"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "description": null}"#, "description"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "protocol": "h3"}"#, "protocol"),
        ("users", "a", #"{"url": "http://127.0.0.1:1", "protocol": 2}"#, "protocol"),
    ])
    func badRegistrationsNameTheField(service: String, instance: String, body: String, field: String) async throws {
        try await withLiveRegistry { url, _ in
            let reply = try await httpRequest(.PUT, "\(url)/v1/services/\(service)/instances/\(instance)", body: Data(body.utf8))
            #expect(reply.status == 400, "\(reply.text)")
            #expect(reply.errorField == field, "\(reply.text)")
            let snapshot = try await httpRequest(.GET, "\(url)/v1/catalog")
            #expect(try (snapshot.json()["services"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func malformedJSONAndEmptyBody() async throws {
        try await withLiveRegistry { url, _ in
            let bad = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data("{\"url\": ".utf8))
            #expect(bad.status == 400)
            #expect(bad.errorField == "body")
            let empty = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a")
            #expect(empty.status == 400)
            let array = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data("[1]".utf8))
            #expect(array.status == 400)
            let deep = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
            let nested = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data("{\"url\":\"http://a:1\",\"tags\":\(deep)}".utf8))
            #expect(nested.status == 400)
        }
    }

    @Test func conflictNamesTheOwner() async throws {
        try await withLiveRegistry { url, _ in
            _ = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: jsonBody(Self.registration))
            let clash = Data(#"{"url": "http://127.0.0.1:9002", "routes": [{"methods": ["GET"], "path": "/users/{id}"}]}"#.utf8)
            let reply = try await httpRequest(.PUT, "\(url)/v1/services/people/instances/p", body: clash)
            #expect(reply.status == 409)
            #expect(reply.errorMessage?.contains("'users'") == true, "\(reply.text)")
            #expect(reply.errorMessage?.contains("GET /users/{id}") == true, "\(reply.text)")
        }
    }

    @Test func oversizedBodyIs413() async throws {
        var reg = Self.registration
        reg["description"] = String(repeating: "x", count: 10_000)
        let body = jsonBody(reg)
        try await withLiveRegistry(configuration: .init(maxBodyBytes: 4096)) { url, _ in
            let reply = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: body)
            #expect(reply.status == 413)
            #expect(reply.errorField == "body")
            // The server keeps serving.
            #expect(try await httpRequest(.GET, "\(url)/v1/health").status == 200)
        }
    }

    @Test func writesNeedTheTokenWhenConfigured() async throws {
        try await withLiveRegistry(configuration: .init(token: { "s3cret" })) { url, _ in
            let path = "\(url)/v1/services/users/instances/a"
            let none = try await httpRequest(.PUT, path, body: jsonBody(Self.registration))
            #expect(none.status == 401)
            #expect(none.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer") == true)
            #expect(!none.text.contains("s3cret"))
            let wrong = try await httpRequest(.PUT, path, body: jsonBody(Self.registration), headers: [("Authorization", "Bearer nope")])
            #expect(wrong.status == 401)
            let right = try await httpRequest(.PUT, path, body: jsonBody(Self.registration), headers: [("Authorization", "Bearer s3cret")])
            #expect(right.status == 201)
            #expect(try await httpRequest(.DELETE, path).status == 401)
            // Reads stay open.
            #expect(try await httpRequest(.GET, "\(url)/v1/catalog").status == 200)
        }
    }

    @Test func protectedReadsAndTheReadOnlyToken() async throws {
        let config = RegistryServer.Configuration(token: { "w-token" }, readToken: { "r-token" }, protectReads: true)
        try await withLiveRegistry(configuration: config) { url, _ in
            let path = "\(url)/v1/services/users/instances/a"
            let write = [("Authorization", "Bearer w-token")]
            let read = [("Authorization", "Bearer r-token")]
            #expect(try await httpRequest(.PUT, path, body: jsonBody(Self.registration), headers: write).status == 201)
            // Reads: no token → 401 naming reads; either token → 200; a wrong one → 401.
            let anonymous = try await httpRequest(.GET, "\(url)/v1/catalog")
            #expect(anonymous.status == 401)
            #expect(anonymous.text.contains("for reads"))
            #expect(try await httpRequest(.GET, "\(url)/v1/catalog", headers: [("Authorization", "Bearer nope")]).status == 401)
            #expect(try await httpRequest(.GET, "\(url)/v1/catalog", headers: read).status == 200)
            #expect(try await httpRequest(.GET, "\(url)/v1/services/users", headers: write).status == 200)
            // The health probe stays open.
            #expect(try await httpRequest(.GET, "\(url)/v1/health").status == 200)
            // The read-only token cannot write, and nothing changed.
            let denied = try await httpRequest(.DELETE, path, headers: read)
            #expect(denied.status == 403)
            #expect(!denied.text.contains("r-token") && !denied.text.contains("w-token"))
            let heartbeat = try await httpRequest(.PUT, "\(path)/heartbeat", headers: read)
            #expect(heartbeat.status == 403)
            #expect(try await httpRequest(.GET, path.replacingOccurrences(of: "/instances/a", with: ""), headers: read).json()["name"] as? String == "users")
        }
    }

    @Test func blockingQueryWakesOnChangeAndTimesOut() async throws {
        try await withLiveRegistry { url, backend in
            let memory = try #require(backend as? MemoryBackend)
            let first = try await httpRequest(.GET, "\(url)/v1/catalog")
            let index = try #require(Int(first.headers.first(name: "X-Tapper-Index") ?? ""))

            // Times out at `wait` with the same index.
            let t0 = ContinuousClock.now
            let idle = try await httpRequest(.GET, "\(url)/v1/catalog?index=\(index)&wait=300ms")
            let idleTime = ContinuousClock.now - t0
            #expect(idle.status == 200)
            #expect(idle.headers.first(name: "X-Tapper-Index") == String(index))
            #expect(idleTime >= .milliseconds(290) && idleTime < .milliseconds(1500))

            // Wakes as soon as something changes: the change is made in-process (so the figure
            // is the wake-up, not a PUT round trip), five times; the best run must be under
            // 50 ms and every run bounded, so one CPU-starved moment on a shared CI machine
            // cannot fail a registry that wakes correctly.
            var latencies: [Duration] = []
            var last = index
            for round in 0..<5 {
                let watchFrom = last
                async let woken = httpRequest(.GET, "\(url)/v1/catalog?index=\(watchFrom)&wait=20s")
                try await poll("the blocking query is parked") { memory.waitingQueries == 1 }
                let changedAt = ContinuousClock.now
                _ = try await memory.register(
                    service: "users", instanceID: "a",
                    registration: ServiceRegistration(url: "http://127.0.0.1:9001", version: "1.0.\(round)")
                )
                let reply = try await woken
                latencies.append(ContinuousClock.now - changedAt)
                let newIndex = Int(reply.headers.first(name: "X-Tapper-Index") ?? "") ?? 0
                #expect(newIndex > watchFrom)
                last = newIndex
            }
            #expect(latencies.min()! < .milliseconds(50), "woke after \(latencies)")
            #expect(latencies.max()! < .seconds(2), "woke after \(latencies)")

            // An index that is already stale returns at once.
            let t1 = ContinuousClock.now
            _ = try await httpRequest(.GET, "\(url)/v1/catalog?index=\(index)&wait=20s")
            #expect(ContinuousClock.now - t1 < .seconds(1))

            let badWait = try await httpRequest(.GET, "\(url)/v1/catalog?index=1&wait=soon")
            #expect(badWait.status == 400 && badWait.errorField == "wait")
        }
    }

    @Test func unknownEndpointsUseTheErrorShape() async throws {
        try await withLiveRegistry { url, _ in
            let reply = try await httpRequest(.GET, "\(url)/v2/nothing")
            #expect(reply.status == 404)
            #expect(reply.errorMessage != nil)
        }
    }
}
