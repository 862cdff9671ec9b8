import ArgumentParser
import Foundation
import Testing
import TapperCLI
import TapperCore

@Suite struct ParsingTests {
    @Test func registerBuildsTheRegistration() throws {
        let cmd = try TapperCommand.parseAsRoot([
            "service", "register", "users", "--url", "http://127.0.0.1:8002", "--route", "GET,post /users/{id:int}",
            "--route", "/files/{p:path}", "--prefix", "/api", "--ttl", "12", "--meta", "team=core", "--version", "2.0.0",
        ])
        let register = try #require(cmd as? TapperCommand.Service.Register)
        let (id, reg) = try register.registration()
        #expect(id == "127.0.0.1-8002")
        #expect(reg.routes == [RouteSpec(methods: ["GET", "POST"], path: "/users/{id:int}"), RouteSpec(methods: [], path: "/files/{p:path}")])
        #expect(reg.prefix == "/api")
        #expect(reg.ttlSeconds == 12)
        #expect(reg.metadata == ["team": "core"])
        #expect(reg.version == "2.0.0")
    }

    @Test func badInputIsAValidationErrorNamingTheFlag() {
        for (args, flag) in [
            (["--url", "localhost:80"], "--url"),
            (["--url", "http://127.0.0.1:1", "--ttl", "0"], "--ttl"),
            (["--url", "http://127.0.0.1:1", "--route", "GET /a/{x}/{x}"], "--route"),
            (["--url", "http://127.0.0.1:1", "--meta", "novalue"], "--meta"),
        ] {
            do {
                _ = try TapperCommand.parseAsRoot(["service", "register", "users"] + args)
                Issue.record("expected failure for \(args)")
            } catch {
                #expect(TapperCommand.fullMessage(for: error).contains(flag), "\(TapperCommand.fullMessage(for: error))")
            }
        }
    }

    @Test func registryURLComesFromTheFlag() throws {
        let cmd = try TapperCommand.parseAsRoot(["service", "list", "--registry", "http://127.0.0.1:9"])
        let list = try #require(cmd as? TapperCommand.Service.List)
        #expect(list.registryOptions.registryURL == "http://127.0.0.1:9")
    }

    @Test func serveRejectsUnknownBackends() {
        #expect(throws: (any Error).self) { try TapperCommand.parseAsRoot(["registry", "serve", "--backend", "zookeeper://x"]) }
    }

    @Test func gatewayAuthFlagsAreCheckedUpFront() throws {
        let keys = "/tmp/tapper-api-keys-\(UInt32.random(in: 0...UInt32.max))"
        #expect(FileManager.default.createFile(atPath: keys, contents: Data("ci:k-123456\n".utf8)))
        defer { try? FileManager.default.removeItem(atPath: keys) }
        let serve = { (args: [String]) throws in try TapperCommand.parseAsRoot(["gateway", "serve"] + args) }
        #expect(throws: (any Error).self) { try serve(["--auth", "api-key"]) }
        #expect(throws: (any Error).self) { try serve(["--auth", "jwt"]) }
        #expect(throws: (any Error).self) { try serve(["--auth", "basic"]) }
        #expect(throws: (any Error).self) { try serve(["--api-keys-file", keys]) }
        #expect(throws: (any Error).self) { try serve(["--auth", "api-key", "--api-keys-file", "/nonexistent"]) }
        // An API-key file is no HS256 secret (too short), and an unknown algorithm is refused.
        #expect(throws: (any Error).self) { try serve(["--auth", "jwt", "--jwt-key-file", keys]) }
        #expect(throws: (any Error).self) { try serve(["--auth", "jwt", "--jwks-file", keys, "--jwt-algorithm", "HS512"]) }
        #expect(throws: (any Error).self) { try serve(["--admin-port", "70000"]) }
        let ok = try serve(["--auth", "api-key", "--api-keys-file", keys, "--admin-port", "9100"])
        #expect((ok as? TapperCommand.Gateway.Serve)?.auth == .apiKey)
        #expect((ok as? TapperCommand.Gateway.Serve)?.adminPort == 9100)
    }

    @Test func docsPathsAreValidated() throws {
        func serve(_ args: [String]) throws -> TapperCommand.Gateway.Serve? {
            try TapperCommand.parseAsRoot(["gateway", "serve"] + args) as? TapperCommand.Gateway.Serve
        }
        for bad in ["docs", "/", "/docs/", "/a b", "/_tapper/docs", "/health", "/a/../b", "/x\"y"] {
            #expect(throws: (any Error).self, "\(bad)") { try serve(["--docs-path", bad]) }
            #expect(throws: (any Error).self, "\(bad)") { try serve(["--openapi-path", bad]) }
        }
        #expect(throws: (any Error).self) { try serve(["--docs-path", "/same", "--openapi-path", "/same"]) }
        let moved = try #require(try serve(["--docs-path", "/api-docs", "--openapi-path", "/api/openapi.json"]))
        #expect(moved.docsPath == "/api-docs" && moved.openapiPath == "/api/openapi.json" && !moved.noDocs)
        #expect(try serve(["--no-docs"])?.noDocs == true)
    }

    @Test func serviceRegisterSendsTheOpenAPIPath() throws {
        func registration(_ args: [String]) throws -> ServiceRegistration? {
            try (TapperCommand.parseAsRoot(["service", "register", "shop", "--url", "http://127.0.0.1:9000"] + args) as? TapperCommand.Service.Register)?
                .registration().registration
        }
        #expect(try registration([])?.openapiPath == nil)
        #expect(try registration(["--openapi-path", "/schema.json"])?.openapiPath == "/schema.json")
        #expect(try registration(["--openapi"])?.openapiPath == "/openapi.json")
        #expect(throws: (any Error).self) { try registration(["--openapi-path", "schema.json"]) }
    }

    @Test func publicRoutesAreMarkedInTheRegistration() throws {
        let parsed = try TapperCommand.parseAsRoot([
            "service", "register", "shop", "--url", "http://127.0.0.1:9000", "--route", "GET /cart", "--public-route", "GET /catalog/{id}",
        ])
        let reg = try #require(parsed as? TapperCommand.Service.Register).registration().registration
        #expect(reg.routes.map(\.isPublic) == [false, true])
        #expect(reg.routes.map(\.path) == ["/cart", "/catalog/{id}"])
    }

    @Test func readProtectionNeedsAWriteToken() throws {
        let file = "/tmp/tapper-read-token-\(UInt32.random(in: 0...UInt32.max))"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("r".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        // A read-only token without a write token would leave writes open: refused.
        #expect(throws: (any Error).self) { try TapperCommand.parseAsRoot(["registry", "serve", "--read-token-file", file]) }
        // --protect-reads needs some token.
        #expect(throws: (any Error).self) { try TapperCommand.parseAsRoot(["registry", "serve", "--protect-reads"]) }
        #expect(throws: (any Error).self) { try TapperCommand.parseAsRoot(["registry", "serve", "--protect-reads", "--token-file", "/nonexistent"]) }
        let ok = try TapperCommand.parseAsRoot(["registry", "serve", "--protect-reads", "--token-file", file, "--read-token-file", file])
        #expect((ok as? TapperCommand.Registry.Serve)?.protectReads == true)
    }

    @Test(arguments: ["memory", "redis://127.0.0.1:6379", "redis://u:p@cache:7000/2", "etcd://127.0.0.1:2379", "etcd://a:1,b:2/teams/", "consul://127.0.0.1:8500"])
    func registryServeAcceptsStoreURLs(_ url: String) throws {
        let cmd = try TapperCommand.parseAsRoot(["registry", "serve", "--backend", url])
        #expect((cmd as? TapperCommand.Registry.Serve)?.backend == url)
    }

    @Test func storeURLsAreValidatedNamingTheFlag() {
        for args in [
            ["registry", "serve", "--backend", "redis://h:0"],
            ["registry", "serve", "--backend", "etcd://nohostport"],
            ["registry", "serve", "--backend", "redis://h:1", "--data-dir", "/tmp/x"],
            ["gateway", "serve", "--registry", "etcd://a:1,b"],
        ] {
            do {
                _ = try TapperCommand.parseAsRoot(args)
                Issue.record("expected failure for \(args)")
            } catch {
                let message = TapperCommand.fullMessage(for: error)
                #expect(message.contains(args[2]), "\(message)")
            }
        }
    }

    @Test(arguments: ["etcd://127.0.0.1:2379", "redis://127.0.0.1:6379", "consul://127.0.0.1:8500", "http://127.0.0.1:8001"])
    func gatewayAcceptsARegistryOrAStore(_ url: String) throws {
        let cmd = try TapperCommand.parseAsRoot(["gateway", "serve", "--registry", url])
        #expect((cmd as? TapperCommand.Gateway.Serve)?.registry == url)
    }
}
