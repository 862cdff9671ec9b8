import ArgumentParser
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
}
