import TapperCore

/// Shared rate-limit counters in Redis: one key per counter, `PREFIXrl:NAME` (prefix `tapper:`
/// by default, so `tapper:rl:gateway 100/s|WINDOW|KEY`), added to with INCRBY and given a
/// PEXPIRE; every sync is one pipelined round trip for all counters. The registry's store
/// ignores these keys (its expiry notifications only concern `PREFIXi:` keys).
public final class RedisCounterStore: SharedCounterStore {
    public let client: RedisClient
    let prefix: String

    public var displayName: String { client.configuration.displayName }

    public init(configuration: RedisConfiguration) {
        client = RedisClient(configuration: configuration)
        prefix = configuration.keyPrefix + "rl:"
    }

    /// A store for `redis://[user:password@]host:port[/db]`.
    public convenience init(redisURL: String) throws {
        self.init(configuration: try RedisConfiguration(url: redisURL))
    }

    public func add(_ deltas: [String: Int], expiresAfter: Duration) async throws -> [String: Int] {
        let names = Array(deltas.keys)
        let ms = String(max(1, expiresAfter.components.seconds * 1000 + expiresAfter.components.attoseconds / 1_000_000_000_000_000))
        var commands: [[String]] = []
        commands.reserveCapacity(names.count * 2)
        for name in names {
            commands.append(["INCRBY", prefix + name, String(deltas[name]!)])
            commands.append(["PEXPIRE", prefix + name, ms])
        }
        let replies = try await client.pipeline(commands)
        var totals: [String: Int] = [:]
        for (i, name) in names.enumerated() {
            let reply = replies[2 * i]
            if case .error(let e) = reply { throw RedisError.server(e) }
            guard let n = reply.int else { throw RedisError.server("INCRBY answered \(reply)") }
            totals[name] = Int(n)
        }
        return totals
    }
}
