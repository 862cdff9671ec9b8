import Foundation
import Logging
import NIOCore
import TapperCore
import TapperRegistry

/// The registry's catalog in Redis.
///
/// Layout (prefix `tapper:` by default):
/// - `tapper:idx` — the change index, a counter bumped (INCR) by every change;
/// - `tapper:i:SERVICE/INSTANCE` — one key per instance, value `MODIFY CREATE TTL_MS JSON`, with
///   a PEXPIRE of the TTL, so expiry is Redis's own; a heartbeat is a PEXPIRE;
/// - `tapper:members` — a set of the instance keys, so reads never scan the keyspace (Redis
///   expires the keys, not their set entries: a read drops the entries of expired keys);
/// - channel `tapper:changes` — every change publishes the new index.
///
/// Each operation is one Lua script, so it is atomic: a write only happens when `idx` still has
/// the value the route-ownership check was made on (the write guard). Expiry by Redis does not
/// bump the index by itself: the store enables keyspace notifications for expired keys
/// (`CONFIG SET notify-keyspace-events Ex`, added to what is set) and bumps the index when one
/// arrives; where CONFIG is not allowed, the periodic resync's read finds members whose key has
/// gone, drops them and bumps the index in the same script.
public final class RedisStore: CatalogStore {
    public let configuration: RedisConfiguration
    public let client: RedisClient
    let logger: Logger

    public var displayName: String { configuration.displayName }

    var indexKey: String { configuration.keyPrefix + "idx" }
    var membersKey: String { configuration.keyPrefix + "members" }
    var instancePrefix: String { configuration.keyPrefix + "i:" }
    var channel: String { configuration.keyPrefix + "changes" }
    var expiredChannel: String { "__keyevent@\(configuration.database)__:expired" }

    public init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.client = RedisClient(configuration: configuration)
        self.logger = logger
    }

    func key(_ service: String, _ instanceID: String) -> String { "\(instancePrefix)\(service)/\(instanceID)" }

    // MARK: scripts

    /// KEYS: index, members. ARGV: channel. Returns {index, key, value, pttl, key, value, pttl…};
    /// members whose key expired are dropped and the index bumped (announced on the channel).
    static let loadScript = """
        local out = {}
        local gone = false
        for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
          local v = redis.call('GET', k)
          if v then
            table.insert(out, k)
            table.insert(out, v)
            table.insert(out, redis.call('PTTL', k))
          else
            redis.call('SREM', KEYS[2], k)
            gone = true
          end
        end
        if gone then
          redis.call('PUBLISH', ARGV[1], tostring(redis.call('INCR', KEYS[1])))
        end
        table.insert(out, 1, redis.call('GET', KEYS[1]) or '0')
        return out
        """

    /// KEYS: index, instance, members. ARGV: guard, create index, TTL ms, JSON, channel.
    static let writeScript = """
        local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
        if cur ~= tonumber(ARGV[1]) then return -1 end
        local n = redis.call('INCR', KEYS[1])
        local c = ARGV[2]
        if c == '0' then c = tostring(n) end
        redis.call('SET', KEYS[2], n .. ' ' .. c .. ' ' .. ARGV[3] .. ' ' .. ARGV[4], 'PX', ARGV[3])
        redis.call('SADD', KEYS[3], KEYS[2])
        redis.call('PUBLISH', ARGV[5], tostring(n))
        return n
        """

    static let refreshScript = """
        local v = redis.call('GET', KEYS[1])
        if not v then return 0 end
        local ttl = string.match(v, '^%d+ %d+ (%d+) ')
        redis.call('PEXPIRE', KEYS[1], ttl)
        return 1
        """

    /// KEYS: index, instance, members. ARGV: channel.
    static let removeScript = """
        local member = redis.call('SREM', KEYS[3], KEYS[2])
        local deleted = redis.call('DEL', KEYS[2])
        if deleted == 0 and member == 0 then return 0 end
        redis.call('PUBLISH', ARGV[1], tostring(redis.call('INCR', KEYS[1])))
        return deleted
        """

    // MARK: values

    /// `MODIFY CREATE TTL_MS JSON` → record (with heartbeat age and expiry from PTTL).
    static func decodeValue(_ value: String, pttl: Int64) -> InstanceRecord? {
        let parts = value.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let modify = UInt64(parts[0]), let create = UInt64(parts[1]), let ttl = Int64(parts[2]),
            var record = try? JSONDecoder().decode(InstanceRecord.self, from: Data(parts[3].utf8))
        else { return nil }
        record.modifyIndex = modify
        record.createIndex = create
        if pttl >= 0 {
            record.expiresInSeconds = Double(pttl) / 1000
            record.heartbeatAgeSeconds = max(0, Double(ttl - pttl) / 1000)
        }
        return record
    }

    static func ttlMilliseconds(_ r: ServiceRegistration) -> Int64 { max(1, Int64((r.ttlSeconds * 1000).rounded())) }

    // MARK: CatalogStore

    public func load() async throws -> StoreRead {
        let reply = try await client.send(["EVAL", Self.loadScript, "2", indexKey, membersKey, channel])
        guard let items = reply.elements, let index = items.first?.int.map({ UInt64(max(0, $0)) }) else {
            throw RedisError.unexpectedReply("\(reply)")
        }
        var records: [InstanceRecord] = []
        var i = 1
        while i + 2 < items.count {
            if let v = items[i + 1].string, let r = Self.decodeValue(v, pttl: items[i + 2].int ?? -1) { records.append(r) }
            i += 3
        }
        return StoreRead(snapshot: CatalogSnapshot(index: index, instances: records), guardToken: index)
    }

    public func write(_ record: InstanceRecord, guard token: UInt64) async throws -> InstanceRecord? {
        var stored = record
        stored.modifyIndex = 0
        stored.heartbeatAgeSeconds = nil
        stored.expiresInSeconds = nil
        let json = String(decoding: try JSONEncoder().encode(stored), as: UTF8.self)
        let ttl = Self.ttlMilliseconds(record.registration)
        let reply = try await client.send([
            "EVAL", Self.writeScript, "3", indexKey, key(record.service, record.instanceID), membersKey,
            String(token), String(record.createIndex), String(ttl), json, channel,
        ])
        guard let n = reply.int else { throw RedisError.unexpectedReply("\(reply)") }
        guard n >= 0 else { return nil }
        stored.modifyIndex = UInt64(n)
        if stored.createIndex == 0 { stored.createIndex = UInt64(n) }
        return stored
    }

    public func refresh(service: String, instanceID: String) async throws -> Bool {
        try await client.send(["EVAL", Self.refreshScript, "1", key(service, instanceID)]).int == 1
    }

    public func remove(service: String, instanceID: String) async throws -> Bool {
        try await client.send(["EVAL", Self.removeScript, "3", indexKey, key(service, instanceID), membersKey, channel]).int == 1
    }

    /// Subscribes to the change channel and to expired-key events on a connection of its own,
    /// re-subscribing with back-off after the connection drops.
    public func notifications(_ changed: @escaping @Sendable () -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                try await subscribeOnce(changed) { failures = 0 }
            } catch {
                if Task.isCancelled { return }
                failures += 1
                if failures == 1 { logger.warning("redis subscription to \(displayName) lost; resubscribing: \(error)") }
            }
            try? await Task.sleep(for: RedisClient.backoff(failures: max(failures, 1)))
        }
    }

    private func subscribeOnce(_ changed: @escaping @Sendable () -> Void, connected: () -> Void) async throws {
        let (pushes, continuation) = AsyncStream.makeStream(of: RESPValue.self)
        let connection = try await RedisConnection.connect(configuration) { continuation.yield($0) }
        let closed = connection.channel.closeFuture
        closed.whenComplete { _ in continuation.finish() }
        defer { connection.close() }
        await enableExpiryEvents()
        for reply in try await connection.pipeline([["SUBSCRIBE", channel], ["SUBSCRIBE", expiredChannel]]) {
            if case .error(let e) = reply { throw RedisError.server(e) }
        }
        connected()
        // Anything may have changed while we were not subscribed.
        changed()
        await withTaskCancellationHandler {
            for await push in pushes {
                guard let parts = push.elements, parts.count >= 3 else { continue }
                let channelName = parts[parts.count - 2].string
                if channelName == expiredChannel {
                    // The next read drops the expired member and bumps the index (once, however
                    // many registries heard this).
                    guard let expiredKey = parts.last?.string, expiredKey.hasPrefix(instancePrefix) else { continue }
                }
                changed()
            }
        } onCancel: {
            connection.close()
        }
        throw RedisError.connectionClosed
    }

    /// Adds `E` and `x` to `notify-keyspace-events` (keeping what is set) so Redis announces
    /// expired keys. Managed Redis often forbids CONFIG; the resync then catches expiries.
    func enableExpiryEvents() async {
        do {
            let reply = try await client.send("CONFIG", "GET", "notify-keyspace-events")
            let current = reply.elements?.last?.string ?? ""
            var wanted = current
            if !wanted.contains("E") { wanted += "E" }
            if !wanted.contains("x") && !wanted.contains("A") { wanted += "x" }
            if wanted != current { try await client.send("CONFIG", "SET", "notify-keyspace-events", wanted) }
        } catch {
            logger.notice("cannot enable expired-key notifications on \(displayName) (\(error)); expiries are noticed by the periodic resync")
        }
    }
}

/// The Redis backend: ``StoreBackend`` over a ``RedisStore``.
public typealias RedisBackend = StoreBackend<RedisStore>

extension StoreBackend where Store == RedisStore {
    /// A backend for `redis://[user:password@]host:port[/db]`.
    public convenience init(redisURL: String, resyncInterval: Duration = .seconds(5), logger: Logger) throws {
        let configuration = try RedisConfiguration(url: redisURL)
        self.init(store: RedisStore(configuration: configuration, logger: logger), resyncInterval: resyncInterval, logger: logger)
    }
}
