import Foundation
import Testing
import TapperTesting

/// Drives the built `tapper` binary against a live `tapper registry serve` process.
@Suite(.serialized) struct RegistryCLITests {
    func startRegistry(_ extra: [String] = [], environment: [String: String] = [:]) async throws -> (TapperProcess, String) {
        let p = try TapperProcess(["registry", "serve", "--port", "0"] + extra, environment: environment)
        let port = try await p.waitForListeningPort()
        return (p, "http://127.0.0.1:\(port)")
    }

    @Test func registerListDeregister() async throws {
        let (registry, url) = try await startRegistry()
        defer { registry.signal(SIGKILL) }
        let reg = try await TapperProcess.run([
            "service", "register", "users", "--url", "http://127.0.0.1:9100", "--version", "1.2.0",
            "--route", "GET /users/{user_id}", "--route", "POST /users/", "--tag", "core", "--registry", url,
        ])
        #expect(reg.status == 0, "\(reg.stderr)")
        #expect(reg.stdout.contains("registered users/127.0.0.1-9100"))

        let list = try await TapperProcess.run(["service", "list", "--json"], environment: ["TAPPER_REGISTRY_URL": url])
        #expect(list.status == 0, "\(list.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])
        let services = try #require(json["services"] as? [[String: Any]])
        #expect(services.first?["name"] as? String == "users")
        let instance = try #require((services.first?["instances"] as? [[String: Any]])?.first)
        #expect(instance["version"] as? String == "1.2.0")
        #expect((instance["routes"] as? [Any])?.count == 2)

        let table = try await TapperProcess.run(["service", "list", "--registry", url])
        #expect(table.stdout.contains("SERVICE"))
        #expect(table.stdout.contains("127.0.0.1-9100"))

        let dereg = try await TapperProcess.run(["service", "deregister", "users", "127.0.0.1-9100", "--registry", url])
        #expect(dereg.status == 0, "\(dereg.stderr)")
        let again = try await TapperProcess.run(["service", "deregister", "users", "127.0.0.1-9100", "--registry", url])
        #expect(again.status != 0)
        #expect(again.stderr.contains("not registered"))
        await registry.stop()
    }

    @Test func invalidFlagsNameTheFlag() async throws {
        let bad = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:1", "--route", "GET /users/{id"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--route"))
        #expect(bad.stderr.contains("unbalanced braces"))
    }

    @Test func registryNotRunningIsOneClearSentence() async throws {
        // Find a port nothing listens on by binding and closing a socket is racy; port 1 is privileged and unused here.
        let r = try await TapperProcess.run(["service", "list", "--registry", "http://127.0.0.1:1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("registry at 127.0.0.1:1"))
        #expect(r.stderr.contains("tapper registry serve"))
        #expect(r.stderr.split(separator: "\n").count <= 2, "\(r.stderr)")
    }

    @Test func keepAliveDeregistersOnSIGTERM() async throws {
        let (registry, url) = try await startRegistry()
        defer { registry.signal(SIGKILL) }
        let keeper = try TapperProcess([
            "service", "register", "users", "--url", "http://127.0.0.1:9200", "--ttl", "3", "--keep-alive", "--registry", url,
        ])
        _ = try await keeper.waitForOutput { out, _ in out.contains("registered users/") ? true : nil }
        let listed = try await httpRequest(.GET, "\(url)/v1/services/users")
        #expect(listed.status == 200)
        keeper.signal(SIGTERM)
        #expect(try await keeper.waitForExit() == 0)
        #expect(keeper.stdout.contains("deregistered users/127.0.0.1-9200"))
        let gone = try await httpRequest(.GET, "\(url)/v1/services/users")
        #expect(gone.status == 404)
        await registry.stop()
    }

    @Test func keepAliveReregistersAfterTheRegistryForgets() async throws {
        let (registry, url) = try await startRegistry()
        defer { registry.signal(SIGKILL) }
        let keeper = try TapperProcess([
            "service", "register", "users", "--url", "http://127.0.0.1:9201", "--ttl", "1", "--keep-alive", "--registry", url,
        ])
        defer { keeper.signal(SIGKILL) }
        _ = try await keeper.waitForOutput { out, _ in out.contains("registered users/") ? true : nil }
        // Remove it behind the keeper's back; its next heartbeat gets 404 and it registers again.
        #expect(try await httpRequest(.DELETE, "\(url)/v1/services/users/instances/127.0.0.1-9201").status == 204)
        try await poll("the keeper registers again") {
            try await httpRequest(.GET, "\(url)/v1/services/users").status == 200
        }
        await keeper.stop()
        await registry.stop()
    }

    @Test func dataDirKeepsRegistrationsAcrossARestart() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-data-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (first, url) = try await startRegistry(["--data-dir", dir])
        let reg = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:9300", "--route", "GET /u", "--ttl", "600", "--registry", url])
        #expect(reg.status == 0, "\(reg.stderr)")
        first.signal(SIGTERM)
        #expect(try await first.waitForExit() == 0)

        let (second, url2) = try await startRegistry(["--data-dir", dir])
        defer { second.signal(SIGKILL) }
        let listed = try await httpRequest(.GET, "\(url2)/v1/services/users")
        #expect(listed.status == 200, "\(second.stderr)")
        #expect(listed.text.contains("127.0.0.1-9300"))
        await second.stop()
    }

    @Test func memoryOnlyRegistrySaysSoAndWarnsOnOpenBind() async throws {
        let p = try TapperProcess(["registry", "serve", "--port", "0", "--host", "0.0.0.0"])
        defer { p.signal(SIGKILL) }
        _ = try await p.waitForListeningPort()
        let warned = try await p.waitForOutput { _, err in
            err.contains("without a token") && err.contains("memory only") ? true : nil
        }
        #expect(warned)
        await p.stop()
    }

    @Test func tokenFileProtectsWrites() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-token-\(UUID().uuidString)").path
        try "t0ken\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (registry, url) = try await startRegistry(["--token-file", file])
        defer { registry.signal(SIGKILL) }
        let denied = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:9400", "--registry", url])
        #expect(denied.status != 0)
        #expect(denied.stderr.contains("401"))
        let allowed = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:9400", "--registry", url], environment: ["TAPPER_TOKEN": "t0ken"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        // Rotation: the rewritten file takes effect without a restart (checked once a second).
        try "n3w-t0ken\n".write(toFile: file, atomically: true, encoding: .utf8)
        try await poll("the rotated token is accepted", timeout: .seconds(10), every: .milliseconds(200)) {
            try await TapperProcess.run(["service", "deregister", "users", "127.0.0.1-9400", "--registry", url], environment: ["TAPPER_TOKEN": "n3w-t0ken"]).status == 0
        }
        let stale = try await TapperProcess.run(["service", "register", "users", "--url", "http://127.0.0.1:9400", "--registry", url], environment: ["TAPPER_TOKEN": "t0ken"])
        #expect(stale.status != 0)
        #expect(!registry.stderr.contains("t0ken") && !registry.stdout.contains("t0ken"))
        await registry.stop()
    }
}
