import Foundation
import Synchronization
import Testing

@testable import TapperCLI

@Suite struct ConfigFileParsingTests {
    @Test func sectionsScalarsListsAndUnderscoreSpelling() throws {
        let file = try ConfigFile(
            yaml: """
                gateway:
                  port: 8080
                  rate_limit: 100/s
                  trusted-proxies: [10.0.0.0/8, "::1"]
                  no-access-log: true
                registry:
                  backend: etcd://127.0.0.1:2379
                """, name: "t.yaml")
        #expect(file.settings["gateway"]?["port"]?.value == .scalar("8080"))
        #expect(file.settings["gateway"]?["rate-limit"]?.value == .scalar("100/s"))
        #expect(file.settings["gateway"]?["rate-limit"]?.line == 3)
        #expect(file.settings["gateway"]?["trusted-proxies"]?.value == .list(["10.0.0.0/8", "::1"]))
        #expect(file.settings["registry"]?["backend"]?.value == .scalar("etcd://127.0.0.1:2379"))
        #expect(try ConfigFile(yaml: "", name: "e").settings.isEmpty)
        #expect(try ConfigFile(yaml: "gateway:\n", name: "e").settings.isEmpty)
    }

    @Test func badFilesNameTheKeyAndLine() {
        func error(_ yaml: String) -> ConfigError? {
            do { _ = try ConfigFile(yaml: yaml, name: "t.yaml"); return nil } catch { return error }
        }
        let unknownSection = error("gateway:\n  port: 1\ngatway:\n  port: 2\n")
        #expect(unknownSection?.key == "gatway" && unknownSection?.line == 3, "\(String(describing: unknownSection))")
        #expect(error("- a\n- b\n")?.message.contains("expected a mapping") == true)
        #expect(error("gateway: 5\n")?.key == "gateway")
        let nested = error("gateway:\n  rate-limit:\n    n: 5\n")
        #expect(nested?.key == "gateway.rate-limit" && nested?.message.contains("not a mapping") == true)
        let twice = error("gateway:\n  rate-limit: 1/s\n  rate_limit: 2/s\n")
        #expect(twice?.message == "set twice" && twice?.line == 3)
        let broken = error("gateway:\n  port: [1, 2\n")
        #expect(broken?.message.hasPrefix("not valid YAML") == true && broken?.message.contains("line") == true, "\(String(describing: broken))")
        #expect(broken?.description.hasPrefix("t.yaml: not valid YAML") == true)
    }
}

@Suite struct ConfigLayersTests {
    let layers = ConfigLayers(section: "gateway", command: TapperCommand.Gateway.Serve.self)

    @Test func keysComeFromTheCommandItself() throws {
        let names = Set(layers.keys.map(\.name))
        for name in ["host", "port", "rate-limit", "rate-limit-key", "trusted-proxies", "no-access-log", "jwt-audience", "log-level"] {
            #expect(names.contains(name), "\(name) missing from \(names.sorted())")
        }
        #expect(!names.contains("config") && !names.contains("help"))
        #expect(layers.key(named: "jwks-file")?.name == "jwt-key-file")
        #expect(layers.key(named: "trusted-proxies")?.upToNextOption == true)
        #expect(layers.key(named: "jwt-audience")?.isRepeating == true)
        #expect(layers.key(named: "no-access-log")?.isFlag == true)
        #expect(layers.environmentVariable(for: try #require(layers.key(named: "rate-limit"))) == "TAPPER_GATEWAY_RATE_LIMIT")
    }

    func parse(_ user: [String], env: [String: String] = [:], yaml: String? = nil) throws -> (TapperCommand.Gateway.Serve, [String: ConfigLayers.Origin]) {
        let file = try yaml.map { y throws(ConfigError) in try ConfigFile(yaml: y, name: "t.yaml") }
        let (args, origins) = try layers.arguments(user: user, environment: env, file: file, filePath: "t.yaml")
        return (try TapperCommand.Gateway.Serve.parse(args), origins)
    }

    @Test func flagsBeatEnvironmentBeatsFileBeatsDefaults() throws {
        let yaml = """
            gateway:
              port: 9200
              rate-limit: 10/s
              timeout: 3
              trusted-proxies: [10.0.0.0/8, 192.168.0.0/16]
              jwt-audience: [a, b]
              no-access-log: true
            """
        let (serve, origins) = try parse(
            ["--port", "9000"], env: ["TAPPER_GATEWAY_PORT": "9100", "TAPPER_GATEWAY_RATE_LIMIT": "5/s", "TAPPER_GATEWAY_URL": "http://elsewhere"], yaml: yaml)
        #expect(serve.port == 9000)
        #expect(serve.rateLimit == "5/s")
        #expect(serve.timeout == 3)
        #expect(serve.trustedProxies == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(serve.jwtAudience == ["a", "b"])
        #expect(serve.noAccessLog)
        #expect(serve.host == "127.0.0.1")  // the default
        #expect(origins["port"] == .commandLine)
        #expect(origins["rate-limit"] == .environment(variable: "TAPPER_GATEWAY_RATE_LIMIT"))
        #expect(origins["timeout"] == .file(path: "t.yaml", key: "gateway.timeout", line: 4))
        #expect(origins["host"] == nil)
    }

    @Test func aListGivenOnTheCommandLineReplacesTheFilesInsteadOfAdding() throws {
        let (serve, _) = try parse(["--trusted-proxies", "::1"], yaml: "gateway:\n  trusted-proxies: [10.0.0.0/8]\n")
        #expect(serve.trustedProxies == ["::1"])
        let (fromEnv, _) = try parse([], env: ["TAPPER_GATEWAY_JWT_AUDIENCE": "x, y"], yaml: "gateway:\n  jwt-audience: [a]\n")
        #expect(fromEnv.jwtAudience == ["x", "y"])
    }

    @Test func falseFlagsAndEqualsSyntaxAndAliases() throws {
        let (off, _) = try parse([], yaml: "gateway:\n  no-access-log: false\n  version-header: ''\n")
        #expect(!off.noAccessLog)
        #expect(off.versionHeader == "")
        // An option's other name is the same key (and validation sees it: a key file needs --auth).
        let aliased = try ConfigFile(yaml: "gateway:\n  jwks-file: /k.pem\n", name: "t.yaml")
        #expect(try layers.arguments(user: [], environment: [:], file: aliased, filePath: "t.yaml").arguments == ["--jwt-key-file=/k.pem"])
        #expect(throws: (any Error).self) { try TapperCommand.Gateway.Serve.parse(["--jwt-key-file=/k.pem"]) }
        // A user's --name=value counts as given.
        let (given, _) = try parse(["--rate-limit=7/s"], yaml: "gateway:\n  rate-limit: 1/s\n")
        #expect(given.rateLimit == "7/s")
    }

    @Test func unknownKeysAndWrongShapesAreErrorsNamingTheKey() {
        func error(_ yaml: String, env: [String: String] = [:]) -> ConfigError? {
            do { _ = try parse([], env: env, yaml: yaml); return nil } catch let e as ConfigError { return e } catch { return nil }
        }
        let typo = error("gateway:\n  port: 1\n  rate-limt: 5/s\n")
        #expect(typo?.key == "gateway.rate-limt" && typo?.line == 3)
        #expect(typo?.message.contains("did you mean 'rate-limit'") == true, "\(String(describing: typo))")
        let list = error("gateway:\n  rate-limit: [1/s, 2/s]\n")
        #expect(list?.key == "gateway.rate-limit" && list?.message.contains("one value") == true)
        let flag = error("gateway:\n  panic-routing: sometimes\n")
        #expect(flag?.key == "gateway.panic-routing" && flag?.message.contains("true or false") == true)
        let envFlag = error("gateway:\n", env: ["TAPPER_GATEWAY_PANIC_ROUTING": "maybe"])
        #expect(envFlag?.description.hasPrefix("TAPPER_GATEWAY_PANIC_ROUTING") == true, "\(String(describing: envFlag))")
        // The registry section is not the gateway's business.
        #expect(error("registry:\n  backend: nowhere\n") == nil)
    }

    @Test func aValidationErrorSaysWhereTheValueWasSet() throws {
        let file = try ConfigFile(yaml: "gateway:\n  port: 1\n  rate-limit: fast\n", name: "t.yaml")
        let (args, origins) = try layers.arguments(user: [], environment: [:], file: file, filePath: "t.yaml")
        var message = ""
        do { _ = try TapperCommand.Gateway.Serve.parse(args) } catch { message = TapperCommand.Gateway.Serve.message(for: error) }
        #expect(message.contains("--rate-limit"), "\(message)")
        let attributed = ConfigLayers.attribute(message, origins: origins)
        #expect(attributed.hasPrefix("t.yaml:3: gateway.rate-limit: "), "\(attributed)")
        #expect(ConfigLayers.attribute("--rate-limit-key: bad", origins: ["rate-limit": .file(path: "f", key: "gateway.rate-limit", line: 1), "rate-limit-key": .environment(variable: "V")]) == "V: --rate-limit-key: bad")
    }

    @Test func resolveOnlyLayersServerCommandsAndFindsTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tapper.yaml").path
        try "gateway:\n  port: 9300\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try ConfigInvocation.resolve(["status", "--json"], environment: ["TAPPER_GATEWAY_PORT": "1"]).invocation == nil)
        #expect(try ConfigInvocation.resolve(["gateway", "serve", "--port", "1"], environment: [:]).invocation == nil)
        let viaFlag = try ConfigInvocation.resolve(["gateway", "serve", "--config", path], environment: [:])
        #expect(viaFlag.arguments == ["gateway", "serve", "--port=9300", "--config", path])
        let viaEnv = try ConfigInvocation.resolve(["gateway", "serve"], environment: ["TAPPER_GATEWAY_CONFIG": path])
        #expect(viaEnv.arguments == ["gateway", "serve", "--port=9300"])
        #expect(viaEnv.invocation?.overriddenBy("port") == nil)
        let overridden = try #require(try ConfigInvocation.resolve(["gateway", "serve", "--config=\(path)", "--port", "5"], environment: [:]).invocation)
        #expect(overridden.overriddenBy("port") == "--port on the command line")
        let changed = overridden.changedKeys(from: overridden.file, to: try ConfigFile(yaml: "gateway:\n  port: 9300\n  timeout: 2\n", name: "x"))
        #expect(changed == ["timeout"])
        #expect(throws: ConfigError.self) { try ConfigInvocation.resolve(["gateway", "serve", "--config", dir.appendingPathComponent("missing.yaml").path], environment: [:]) }
    }
}

@Suite struct ConfigWatcherTests {
    @Test func reloadsChangesReportsABrokenVersionOnceAndPicksUpTheFix() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-watch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tapper.yaml").path
        let first = Data("gateway:\n  rate-limit: 1/s\n".utf8)
        try first.write(to: URL(fileURLWithPath: path))
        let seen = Mutex<[String]>([])
        let errors = Mutex<[ConfigError]>([])
        let watcher = ConfigWatcher(path: path, interval: .milliseconds(20))
        let task = Task {
            await watcher.run(
                initial: first, onError: { e in errors.withLock { $0.append(e) } },
                apply: { file in
                    if case .scalar(let v)? = file.settings["gateway"]?["rate-limit"]?.value { seen.withLock { $0.append(v) } }
                })
        }
        defer { task.cancel() }
        try Data("gateway:\n  rate-limit: 2/s\n".utf8).write(to: URL(fileURLWithPath: path))
        try await waitUntil { seen.withLock { $0 } == ["2/s"] }
        try Data("gateway:\n  rate-limit: [\n".utf8).write(to: URL(fileURLWithPath: path))
        try await waitUntil { errors.withLock { $0.count } == 1 }
        // Still broken: reported once only, nothing applied.
        try await Task.sleep(for: .milliseconds(100))
        #expect(errors.withLock { $0.count } == 1)
        #expect(errors.withLock { $0.first?.file } == path)
        try Data("gateway:\n  rate-limit: 3/s\n".utf8).write(to: URL(fileURLWithPath: path))
        try await waitUntil { seen.withLock { $0 } == ["2/s", "3/s"] }
    }

    func waitUntil(_ what: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !what() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}
