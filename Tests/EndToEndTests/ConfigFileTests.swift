import Foundation
import Testing
import TapperTesting

/// `--config tapper.yaml` on the real binary: layering, live reload of the rate limit, errors
/// that name the key, and the previous settings kept when a new version is bad.
@Suite(.serialized) struct ConfigFileTests {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-config-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    func write(_ text: String, _ name: String = "tapper.yaml") throws -> String {
        let path = dir.appendingPathComponent(name).path
        // Written in place (not renamed over), as an editor saving the file would.
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Requests until one is refused; returns the refusal's `RateLimit-Policy` (nil: none refused in `tries`).
    func policyOfFirstRefusal(_ url: String, tries: Int) async throws -> String? {
        for _ in 0..<tries {
            let r = try await httpRequest(.GET, url)
            if r.status == 429 { return r.headers.first(name: "RateLimit-Policy") }
            #expect(r.status == 200, "\(r.status) \(r.body)")
        }
        return nil
    }

    @Test func theFileSetsTheGatewayAndARateLimitChangeAppliesWithoutRestart() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let path = try write(
            """
            gateway:
              port: 0
              registry-port: 0
              no-access-log: true
              rate-limit: 3/m
            """)
        let gw = try TapperProcess(["gateway", "serve", "--config", path])
        defer { gw.signal(SIGKILL) }
        let registry = "http://127.0.0.1:\(try await gw.waitForListeningPort("embedded registry listening on http://"))"
        let url = "http://127.0.0.1:\(try await gw.waitForListeningPort("gateway listening on http://"))"
        let r = try await TapperProcess.run(["service", "register", "users", "--url", up.url, "--registry", registry, "--route", "GET /users/{id}"])
        #expect(r.status == 0, "\(r.stderr)")
        try await poll("the route is live") { try await routeIsLive(url) }
        // 3 a minute from the file (the poll above may have used some): a refusal names q=3.
        #expect(try await policyOfFirstRefusal("\(url)/users/1", tries: 5) == "\"gateway\";q=3;w=60")

        // Raise it in the file: the running gateway takes it within its one-second check.
        let changedAt = ContinuousClock.now
        _ = try write(
            """
            gateway:
              port: 0
              registry-port: 0
              no-access-log: true
              rate-limit: 8/m
            """)
        try await poll("the new limit is in force", timeout: .seconds(10)) { try await httpRequest(.GET, "\(url)/users/2").status == 200 }
        let took = ContinuousClock.now - changedAt
        #expect(took < .seconds(5), "reload took \(took)")
        let line = try await gw.waitForOutput { out, err in (out + err).split(separator: "\n").first { $0.contains("config reloaded") }.map(String.init) }
        #expect(line.contains("gateway.rate-limit"), "\(line)")
        #expect(try await policyOfFirstRefusal("\(url)/users/3", tries: 10) == "\"gateway\";q=8;w=60")

        // A bad value: named with its line and key, and the limit in force stays.
        _ = try write(
            """
            gateway:
              port: 0
              registry-port: 0
              no-access-log: true
              rate-limit: lots
            """)
        let error = try await gw.waitForOutput { out, err in (out + err).split(separator: "\n").first { $0.contains("config not reloaded") }.map(String.init) }
        #expect(error.contains("\(path):5: gateway.rate-limit"), "\(error)")
        let stillRefused = try await httpRequest(.GET, "\(url)/users/4")
        #expect(stillRefused.status == 429)
        #expect(stillRefused.headers.first(name: "RateLimit-Policy") == "\"gateway\";q=8;w=60")

        // A setting that cannot change live is named as waiting for a restart; the rest applies.
        _ = try write(
            """
            gateway:
              port: 0
              registry-port: 0
              no-access-log: true
              rate-limit: 8/m
              timeout: 2
            """)
        let restart = try await gw.waitForOutput { out, err in (out + err).split(separator: "\n").first { $0.contains("gateway.timeout changed") }.map(String.init) }
        #expect(restart.contains("takes effect when the gateway restarts"), "\(restart)")
        await gw.stop()
    }

    func routeIsLive(_ url: String) async throws -> Bool {
        // Any answer from the instance (200) or the limiter (429) means the route is known.
        let status = try await httpRequest(.GET, "\(url)/users/0").status
        return status == 200 || status == 429
    }

    @Test func sighupReloadsAndDoesNotEndTheGateway() async throws {
        let path = try write("gateway:\n  port: 0\n  registry-port: 0\n  no-access-log: true\n  rate-limit: 5/s\n", "hup.yaml")
        let gw = try TapperProcess(["gateway", "serve", "--config", path])
        defer { gw.signal(SIGKILL) }
        _ = try await gw.waitForListeningPort("gateway listening on http://")
        _ = try await gw.waitForOutput { out, err in (out + err).contains("config: watching") ? true : nil }
        _ = try write("gateway:\n  port: 0\n  registry-port: 0\n  no-access-log: true\n  rate-limit: 6/s\n", "hup.yaml")
        gw.signal(SIGHUP)
        let line = try await gw.waitForOutput(timeout: .seconds(5)) { out, err in (out + err).split(separator: "\n").first { $0.contains("config reloaded") }.map(String.init) }
        #expect(line.contains("gateway.rate-limit"))
        gw.signal(SIGHUP)
        gw.signal(SIGHUP)
        // Still serving after three hangups.
        let port = try await gw.waitForListeningPort("gateway listening on http://")
        #expect(try await httpRequest(.GET, "http://127.0.0.1:\(port)/health").status == 200)
        await gw.stop()
    }

    @Test func flagsAndVariablesWinOverTheFile() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let path = try write("gateway:\n  port: 0\n  registry-port: 0\n  no-access-log: true\n  rate-limit: 2/m\n  rate-limit-key: ip\n", "layers.yaml")
        let gw = try TapperProcess(["gateway", "serve", "--config", path, "--rate-limit", "4/m"], environment: ["TAPPER_GATEWAY_RATE_LIMIT_KEY": "header:x-user"])
        defer { gw.signal(SIGKILL) }
        let registry = "http://127.0.0.1:\(try await gw.waitForListeningPort("embedded registry listening on http://"))"
        let url = "http://127.0.0.1:\(try await gw.waitForListeningPort("gateway listening on http://"))"
        #expect(try await TapperProcess.run(["service", "register", "users", "--url", up.url, "--registry", registry, "--route", "GET /users/{id}"]).status == 0)
        try await poll("the route is live") { try await httpRequest(.GET, "\(url)/users/0", headers: [("x-user", "warmup")]).status == 200 }
        // --rate-limit 4/m beats the file's 2/m; the key from the variable counts per x-user.
        var statuses: [Int] = []
        for _ in 0..<5 { statuses.append(try await httpRequest(.GET, "\(url)/users/1", headers: [("x-user", "ann")]).status) }
        #expect(statuses == [200, 200, 200, 200, 429])
        #expect(try await httpRequest(.GET, "\(url)/users/1", headers: [("x-user", "bob")]).status == 200)
        await gw.stop()
    }

    @Test func aBadFileStopsStartupWithTheKeyAndLine() async throws {
        let typo = try write("gateway:\n  port: 0\n  rate-limt: 5/s\n", "typo.yaml")
        let a = try await TapperProcess.run(["gateway", "serve", "--config", typo])
        #expect(a.status != 0)
        #expect(a.stderr.contains("\(typo):3: gateway.rate-limt: unknown option (did you mean 'rate-limit'?)"), "\(a.stderr)")
        let bad = try write("gateway:\n  port: 0\n  load-balancer: fastest\n", "bad.yaml")
        let b = try await TapperProcess.run(["gateway", "serve", "--config", bad])
        #expect(b.status != 0)
        #expect(b.stderr.contains("\(bad):3: gateway.load-balancer: "), "\(b.stderr)")
        let env = try await TapperProcess.run(["gateway", "serve", "--port", "0"], environment: ["TAPPER_GATEWAY_TIMEOUT": "-1"])
        #expect(env.status != 0)
        #expect(env.stderr.contains("TAPPER_GATEWAY_TIMEOUT") || env.stderr.contains("timeouts"), "\(env.stderr)")
        let missing = try await TapperProcess.run(["registry", "serve", "--config", dir.appendingPathComponent("nope.yaml").path])
        #expect(missing.status != 0 && missing.stderr.contains("nope.yaml: cannot be read"), "\(missing.stderr)")
    }

    @Test func registryServeReadsItsSection() async throws {
        let path = try write("registry:\n  port: 0\n  backend: memory\n  max-wait: 20s\ngateway:\n  port: 1\n", "registry.yaml")
        let reg = try TapperProcess(["registry", "serve", "--config", path])
        defer { reg.signal(SIGKILL) }
        let port = try await reg.waitForListeningPort("registry listening on http://")
        #expect(try await httpRequest(.GET, "http://127.0.0.1:\(port)/v1/health").status == 200)
        await reg.stop()
    }
}
