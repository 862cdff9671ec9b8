import ArgumentParser
import Logging
import TapperCore
import TapperRegistry
import TapperRegistryConsul
import TapperRegistryEtcd
import TapperRegistryRedis

/// The `--backend` / `--registry` store URLs: `memory`, `redis://…`, `etcd://…`, `consul://…`.
enum BackendURL {
    /// Schemes of shared stores a gateway can read directly.
    static let storeSchemes = ["redis://", "etcd://", "consul://"]

    static func isStore(_ url: String) -> Bool {
        let lower = url.lowercased()
        return storeSchemes.contains { lower.hasPrefix($0) }
    }

    /// Checks the URL without connecting.
    /// - Returns: nil when valid, else a sentence saying what is wrong.
    static func problem(_ url: String) -> String? {
        let lower = url.lowercased()
        if lower == "memory" { return nil }
        do {
            if lower.hasPrefix("redis://") {
                _ = try RedisConfiguration(url: url)
                return nil
            }
            if lower.hasPrefix("etcd://") {
                _ = try EtcdConfiguration(url: url)
                return nil
            }
            if lower.hasPrefix("consul://") {
                _ = try ConsulStore(url: url, logger: Logger(label: "tapper.validate"))
                return nil
            }
        } catch {
            return "\(error)"
        }
        return "'\(url)' is not a backend; use memory, redis://[user:password@]host:port[/db], etcd://host:port[,host:port…][/prefix] or consul://host:port"
    }

    /// The shared rate-limit counters of a `redis://` or `etcd://` store (`--rate-limit-store`).
    static func counterStore(_ url: String) throws -> any SharedCounterStore {
        let lower = url.lowercased()
        if lower.hasPrefix("redis://") { return try RedisCounterStore(redisURL: url) }
        if lower.hasPrefix("etcd://") { return try EtcdCounterStore(etcdURL: url) }
        throw ValidationError("--rate-limit-store must be local, shared, redis://… or etcd://…, got '\(url)'")
    }

    /// Builds the backend for a valid URL.
    static func make(_ url: String, dataDirectory: String?, logger: Logger) throws -> any RegistryBackend {
        let lower = url.lowercased()
        if lower.hasPrefix("redis://") { return try RedisBackend(redisURL: url, logger: logger) }
        if lower.hasPrefix("etcd://") { return try EtcdBackend(etcdURL: url, logger: logger) }
        if lower.hasPrefix("consul://") { return try ConsulBackend(consulURL: url, logger: logger) }
        return try MemoryBackend(dataDirectory: dataDirectory, logger: logger)
    }
}
