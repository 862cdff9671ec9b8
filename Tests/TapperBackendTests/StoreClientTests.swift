import Foundation
import Logging
import ServiceLifecycle
import Testing
import TapperCore
import TapperRegistry
import TapperRegistryEtcd
import TapperRegistryRedis
import TapperTesting

/// The store clients' connection features against real servers: Redis AUTH and SELECT, etcd
/// endpoint failover.
@Suite(.serialized) struct StoreClientTests {
    /// Runs `body` with a store server, stopping it (and removing its data) afterwards.
    func withStoreServer<T: Sendable>(_ kind: StoreServer.Kind, _ extra: [String] = [], _ body: @Sendable (StoreServer) async throws -> T) async throws -> T {
        let server = try await StoreServer(kind, extraArguments: extra)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    static var logger: Logger {
        var l = Logger(label: "t")
        l.logLevel = .critical
        return l
    }

    @Test(.enabled(if: StoreServer.shouldRun(.redis)))
    func redisAuthenticatesAndSelectsTheDatabase() async throws {
        try await withStoreServer(.redis, ["--requirepass", "s3cret"]) { server in
            let good = RedisClient(configuration: try RedisConfiguration(url: "redis://:s3cret@127.0.0.1:\(server.port)/5"))
            try await good.send("SET", "probe", "in-db-5")
            #expect(try await good.send("GET", "probe").string == "in-db-5")
            let db0 = RedisClient(configuration: try RedisConfiguration(url: "redis://default:s3cret@127.0.0.1:\(server.port)"))
            #expect(try await db0.send("GET", "probe").isNull, "SELECT put the key in database 5, not 0")
            // Pipelined: replies come back in order.
            let replies = try await good.pipeline((0..<50).map { _ in ["INCR", "counter"] })
            #expect(replies.map(\.int) == (1...50).map { Int64($0) })

            let wrong = RedisClient(configuration: try RedisConfiguration(url: "redis://:nope@127.0.0.1:\(server.port)"))
            do {
                try await wrong.send("PING")
                Issue.record("a wrong password was accepted")
            } catch let e as RedisError {
                #expect("\(e)".contains("authentication failed"), "\(e)")
            }
            let backend = try RedisBackend(redisURL: "redis://:nope@127.0.0.1:\(server.port)", logger: Self.logger)
            do {
                _ = try await backend.register(service: "users", instanceID: "a", registration: ServiceRegistration(url: "http://127.0.0.1:1"))
                Issue.record("registered with a wrong password")
            } catch let e as RegistryBackendError {
                #expect(e.description.contains("authentication failed") && e.description.contains("redis://127.0.0.1:\(server.port)"), "\(e)")
                #expect(!e.description.contains("nope"), "the password must not leak into errors")
            }
            await good.close()
            await db0.close()
        }
    }

    @Test(.enabled(if: StoreServer.shouldRun(.redis)))
    func redisCommandsTimeOutAndTheClientReconnects() async throws {
        try await withStoreServer(.redis) { server in
            var configuration = try RedisConfiguration(url: server.url)
            configuration.commandTimeout = .milliseconds(300)
            let client = RedisClient(configuration: configuration)
            let started = ContinuousClock.now
            await #expect(throws: RedisError.self) { try await client.send("BLPOP", "tapper:nothing", "2") }
            #expect(ContinuousClock.now - started < .milliseconds(900), "the timeout must not wait for the reply")
            try await poll("the client reconnects after the timed-out connection was closed", timeout: .seconds(10)) {
                (try? await client.send("PING"))?.string == "PONG"
            }
            await client.close()
        }
    }

    @Test(.enabled(if: StoreServer.shouldRun(.etcd)))
    func etcdFailsOverToTheNextEndpoint() async throws {
        try await withStoreServer(.etcd) { server in
            let dead = try StoreServer.freePort()
            let backend = try EtcdBackend(etcdURL: "etcd://127.0.0.1:\(dead),127.0.0.1:\(server.port)/failover", logger: Self.logger)
            let result = try await backend.register(service: "users", instanceID: "a", registration: ServiceRegistration(url: "http://127.0.0.1:1"))
            #expect(result.created)
            #expect(try await backend.snapshot().has("users", "a"))
            // Stored under the prefix from the URL path.
            let range = try await EtcdClient(configuration: .init(endpoints: ["http://127.0.0.1:\(server.port)"])).post(
                "/v3/kv/range", ["key": Data("/failover/i/users/a".utf8).base64EncodedString()]
            )
            #expect((range["kvs"] as? [[String: Any]])?.count == 1)
        }
    }

    /// Expiry by Redis reaches watchers through keyspace notifications (well before the resync),
    /// and, where CONFIG is forbidden, through the resync's read.
    @Test(.enabled(if: StoreServer.shouldRun(.redis)), arguments: [true, false])
    func redisExpiryReachesWatchers(configAllowed: Bool) async throws {
        try await withStoreServer(.redis, configAllowed ? [] : ["--rename-command", "CONFIG", ""]) { server in
            let resync: Duration = configAllowed ? .seconds(60) : .milliseconds(500)
            let backend = try RedisBackend(redisURL: server.url, resyncInterval: resync, logger: Self.logger)
            let group = ServiceGroup(configuration: .init(services: [backend], logger: Self.logger))
            let task = Task { try await group.run() }
            do {
                _ = try await backend.register(service: "users", instanceID: "a", registration: ServiceRegistration(url: "http://127.0.0.1:1", ttlSeconds: 1))
                var watcher = Watcher(backend.watch())
                let before = try await watcher.next { $0.has("users", "a") }
                let gone = try await watcher.next(timeout: .seconds(10)) { !$0.has("users", "a") }
                #expect(gone.index > before.index)
            } catch {
                await group.triggerGracefulShutdown()
                _ = try? await task.value
                throw error
            }
            await group.triggerGracefulShutdown()
            _ = try? await task.value
            let probe = RedisClient(configuration: .init(port: server.port))
            let events = try await probe.pipeline([["PING"], ["CONFIG", "GET", "notify-keyspace-events"]])
            await probe.close()
            if configAllowed {
                #expect(events[1].elements?.last?.string?.contains("E") == true, "keyspace events were enabled: \(events[1])")
            } else {
                guard case .error = events[1] else {
                    Issue.record("CONFIG should be unavailable: \(events[1])")
                    return
                }
            }
        }
    }
}
