import Foundation
import Testing
import TapperTesting

/// `tapper status` and `tapper route test` against a live gateway with real upstreams.
@Suite(.serialized) struct OperatorToolsTests {
    struct Live {
        let gateway: TapperProcess
        let env: [String: String]
    }

    func start() async throws -> Live {
        let p = try TapperProcess(["gateway", "serve", "--port", "0", "--registry-port", "0", "--no-access-log", "--health-interval", "0.2", "--health-fall", "1"])
        let registryPort = try await p.waitForListeningPort("embedded registry listening on http://")
        let gatewayPort = try await p.waitForListeningPort("gateway listening on http://")
        return Live(gateway: p, env: ["TAPPER_REGISTRY_URL": "http://127.0.0.1:\(registryPort)", "TAPPER_GATEWAY_URL": "http://127.0.0.1:\(gatewayPort)"])
    }

    func tapper(_ args: [String], _ live: Live) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await TapperProcess.run(args, environment: live.env)
    }

    @Test func statusExitCodesAndJSON() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let live = try await start()
        defer { live.gateway.signal(SIGKILL) }
        #expect(try await tapper(["service", "register", "users", "--url", up.url, "--route", "GET /users/{id}"], live).status == 0)
        try await poll("the gateway has the service") { try await tapper(["status", "--quiet"], live).status == 0 }

        let ok = try await tapper(["status", "--json"], live)
        #expect(ok.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as? [String: Any])
        #expect(json["view"] as? String == "gateway")
        #expect(json["status"] as? String == "ok")
        let services = try #require(json["services"] as? [[String: Any]])
        #expect(services.first?["name"] as? String == "users")
        #expect(services.first?["healthy"] as? Int == 1)
        let instance = try #require((services.first?["instances"] as? [[String: Any]])?.first)
        for key in ["id", "url", "version", "state", "weight", "last_heartbeat_age_seconds"] { #expect(instance[key] != nil, "missing \(key)") }

        let table = try await tapper(["status"], live)
        #expect(table.stdout.contains("SERVICE") && table.stdout.contains("healthy") && !table.stdout.contains("\u{1B}["))

        // An instance nobody listens on: degraded, exit 1, and the reason is printed.
        let dead = try await FakeUpstream(name: "dead")
        let deadURL = dead.url
        await dead.stop()
        #expect(try await tapper(["service", "register", "orders", "--url", deadURL, "--route", "GET /orders/{id}"], live).status == 0)
        try await poll("the dead instance is marked down") { try await tapper(["status", "--quiet"], live).status == 1 }
        let degraded = try await tapper(["status"], live)
        #expect(degraded.status == 1)
        #expect(degraded.stdout.contains("service 'orders' has no healthy instance"), "\(degraded.stdout)")
        // --service narrows the view (and the verdict).
        #expect(try await tapper(["status", "--service", "users", "--quiet"], live).status == 0)

        // Gateway gone: the registry's view, said so.
        live.gateway.signal(SIGKILL)
        _ = try await live.gateway.waitForExit()
        let nothing = try await tapper(["status"], live)
        #expect(nothing.status == 2)
        #expect(nothing.stderr.contains("nothing reachable"))
    }

    /// `status --watch` redraws when the catalog changes: it waits on the registry's blocking
    /// query (5 s), so a change shows up well before the next periodic redraw would.
    @Test func statusWatchRedrawsOnChange() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let live = try await start()
        defer { live.gateway.signal(SIGKILL) }
        #expect(try await tapper(["service", "register", "users", "--url", up.url, "--route", "GET /users/{id}"], live).status == 0)
        let watch = try TapperProcess(["status", "--watch"], environment: live.env)
        defer { watch.signal(SIGKILL) }
        try await poll("the first drawing", timeout: .seconds(10)) { watch.stdout.contains("users") }
        // Let the watch park on the blocking query: the index it waits after is the current one.
        try await poll("the watch is waiting", timeout: .seconds(10)) { watch.stdout.components(separatedBy: "SERVICE").count >= 3 }
        let drawings = watch.stdout.components(separatedBy: "SERVICE").count
        let start = ContinuousClock.now
        #expect(try await tapper(["service", "register", "orders", "--url", up.url, "--route", "GET /orders/{id}"], live).status == 0)
        try await poll("the change is drawn", timeout: .seconds(10)) { watch.stdout.contains("orders") }
        let waited = ContinuousClock.now - start
        #expect(waited < .seconds(4), "redrawn after \(waited): the watch did not wake on the change")
        #expect(watch.stdout.components(separatedBy: "SERVICE").count == drawings + 1, "one redraw per change, no busy loop")
    }

    @Test func statusFallsBackToTheRegistryView() async throws {
        let registry = try TapperProcess(["registry", "serve", "--port", "0"])
        defer { registry.signal(SIGKILL) }
        let port = try await registry.waitForListeningPort()
        let env = ["TAPPER_REGISTRY_URL": "http://127.0.0.1:\(port)", "TAPPER_GATEWAY_URL": "http://127.0.0.1:1"]
        _ = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:9999", "--route", "GET /u"], environment: env)
        let r = try await TapperProcess.run(["status"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("showing the registry's view"))
        let j = try await TapperProcess.run(["status", "--json"], environment: env)
        #expect(j.stdout.contains(#""view" : "registry""#))
    }

    @Test func statusReadsAProtectedOrMovedAdminEndpoint() async throws {
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-admin-\(UUID().uuidString)").path
        try "adm1n-s3cret\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        let p = try TapperProcess([
            "gateway", "serve", "--port", "0", "--registry-port", "0", "--no-access-log", "--admin-port", "0", "--admin-token-file", tokenFile,
        ])
        defer { p.signal(SIGKILL) }
        let registryPort = try await p.waitForListeningPort("embedded registry listening on http://")
        let adminPort = try await p.waitForListeningPort("gateway admin endpoints on http://")
        let gatewayPort = try await p.waitForListeningPort("gateway listening on http://")
        let registry = ["TAPPER_REGISTRY_URL": "http://127.0.0.1:\(registryPort)"]

        // The main port does not serve /_tapper/*: status says where to look.
        let main = try await TapperProcess.run(["status", "--gateway", "http://127.0.0.1:\(gatewayPort)"], environment: registry)
        #expect(main.stdout.contains("with --admin-port, point --gateway at that port"), "\(main.stdout)")
        // The admin port without the token: refused, and status says what to pass.
        let admin = "http://127.0.0.1:\(adminPort)"
        let refused = try await TapperProcess.run(["status", "--gateway", admin], environment: registry)
        #expect(refused.stdout.contains("pass --admin-token or set TAPPER_ADMIN_TOKEN"), "\(refused.stdout)")
        // With it: the gateway's own view.
        let ok = try await TapperProcess.run(["status", "--gateway", admin, "--json"], environment: registry.merging(["TAPPER_ADMIN_TOKEN": "adm1n-s3cret"]) { $1 })
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains(#""view" : "gateway""#), "\(ok.stdout)")
        #expect(!p.stderr.contains("adm1n-s3cret") && !p.stdout.contains("adm1n-s3cret"))
    }

    @Test func routeTestExplainsMatchesAndMisses() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let live = try await start()
        defer { live.gateway.signal(SIGKILL) }
        #expect(
            try await tapper(
                ["service", "register", "users", "--url", up.url, "--route", "GET /users/{user_id:int}", "--route", "GET /users/{name}", "--public-route", "GET /users/me"],
                live
            ).status == 0)

        let matched = try await tapper(["route", "test", "GET", "/users/42"], live)
        #expect(matched.status == 0)
        #expect(matched.stdout.contains("via /users/{user_id:int}"))
        #expect(matched.stdout.contains("user_id=42"))
        #expect(!matched.stdout.contains("public:"))
        #expect(matched.stdout.contains("beats /users/{name}: at segment 2 a typed parameter {user_id:int} is more specific than a parameter {name}"))

        let literal = try await tapper(["route", "test", "GET", "/users/me", "--json"], live)
        let j = try #require(try JSONSerialization.jsonObject(with: Data(literal.stdout.utf8)) as? [String: Any])
        #expect(j["template"] as? String == "/users/me")
        #expect(j["public"] as? Bool == true)
        #expect((j["candidates"] as? [[String: Any]])?.count == 2)

        let notAllowed = try await tapper(["route", "test", "DELETE", "/users/42"], live)
        #expect(notAllowed.status == 1)
        #expect(notAllowed.stdout.contains("405") && notAllowed.stdout.contains("allowed: GET, HEAD"))

        let missing = try await tapper(["route", "test", "GET", "/users/1/orders"], live)
        #expect(missing.status == 1)
        #expect(missing.stdout.contains("404") && missing.stdout.contains("nearby"))

        // A table of cases with one deliberate failure.
        let yaml = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID().uuidString).yaml").path
        try """
            - method: GET
              path: /users/42
              service: users
              params: {user_id: "42"}
            - method: GET
              path: /users/me
              service: users
            - method: GET
              path: /users/bob
              service: orders
            - method: DELETE
              path: /users/1
              status: 405
            - method: GET
              path: /nowhere
              status: 404
            """.write(toFile: yaml, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: yaml) }
        let checked = try await tapper(["route", "test", "--file", yaml], live)
        #expect(checked.status == 1)
        #expect(checked.stdout.contains("FAIL GET /users/bob: expected service 'orders', got 'users'"), "\(checked.stdout)")
        #expect(checked.stdout.contains("5 cases, 1 failed; coverage 100.0% (3 of 3 routes)"), "\(checked.stdout)")
        let failures = try await tapper(["route", "test", "--file", yaml, "--only-failures"], live)
        #expect(!failures.stdout.contains("PASS"))
        try """
            - method: GET
              path: /users/42
              service: users
            """.write(toFile: yaml, atomically: true, encoding: .utf8)
        let partial = try await tapper(["route", "test", "--file", yaml, "--fail-under", "50"], live)
        #expect(partial.status == 1)
        #expect(partial.stdout.contains("coverage 33.3% (1 of 3 routes)"))
        #expect(try await tapper(["route", "test", "--file", yaml, "--fail-under", "30"], live).status == 0)

        try await poll("the gateway routes it") { try await tapper(["route", "test", "GET", "/users/42?x=1", "--send", "-H", "X-Test: yes"], live).status == 0 }
        let sent = try await tapper(["route", "test", "GET", "/users/42?x=1", "--send", "-H", "X-Test: yes"], live)
        #expect(sent.stdout.contains("sent: 200"))
        #expect(sent.stdout.contains("from users/"))
        #expect(sent.stdout.contains(#""X-Test","yes""#) || sent.stdout.contains("X-Test"))
    }
}
