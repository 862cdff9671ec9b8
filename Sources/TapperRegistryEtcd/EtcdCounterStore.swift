import Foundation
import Synchronization
import TapperCore

/// Shared rate-limit counters in etcd, which has no atomic increment: each gateway writes its
/// own running count of a counter to `BASE/NAME/GATEWAY-ID` and a counter's total is the sum
/// over the range `BASE/NAME/`. One transaction per 64 counters puts this gateway's counts
/// and reads the ranges back; the keys hang on a lease, so they expire by themselves.
///
/// `BASE` is the catalog prefix with `-ratelimit/` for its last `/` (`/tapper-ratelimit/`):
/// outside the catalog's range, so the registry's watch never sees these writes.
public final class EtcdCounterStore: SharedCounterStore {
    public let client: EtcdClient
    let base: String
    /// This gateway's name among the writers.
    let writer: String
    private struct State {
        /// This gateway's count per counter name, and when it last changed (monotonic).
        var ours: [String: (count: Int, touched: ContinuousClock.Instant)] = [:]
        var lease: (id: String, granted: ContinuousClock.Instant, ttl: Int64)?
    }
    private let state = Mutex(State())

    public var displayName: String { client.configuration.displayName }

    public init(configuration: EtcdConfiguration, writer: String = UUID().uuidString) {
        client = EtcdClient(configuration: configuration)
        base = String(configuration.prefix.dropLast()) + "-ratelimit/"
        self.writer = writer
    }

    /// A store for `etcd://host:port[,host:port…][/prefix]`.
    public convenience init(etcdURL: String) throws {
        self.init(configuration: try EtcdConfiguration(url: etcdURL))
    }

    /// A lease of `ttl` seconds, granted anew when a third of the current one has passed (keys
    /// written under an older lease expire with it unless written again).
    func lease(ttl: Int64) async throws -> String {
        let now = ContinuousClock.now
        if let l = state.withLock({ $0.lease }), l.ttl == ttl, now - l.granted < .seconds(ttl / 3) { return l.id }
        let reply = try await client.post("/v3/lease/grant", ["TTL": String(ttl)])
        let id = EtcdClient.int(reply, "ID")
        guard id != 0 else { throw EtcdError.unexpected("lease grant without an ID") }
        state.withLock { $0.lease = (String(id), now, ttl) }
        return String(id)
    }

    public func add(_ deltas: [String: Int], expiresAfter: Duration) async throws -> [String: Int] {
        let ttl = max(5, expiresAfter.components.seconds + 1)
        let leaseID = try await lease(ttl: ttl)
        let now = ContinuousClock.now
        let counts: [(String, Int)] = state.withLock { s in
            // Forget our counts of counters that have expired in the store anyway.
            s.ours = s.ours.filter { now - $0.value.touched < .seconds(ttl) }
            return deltas.map { name, delta in
                let count = (s.ours[name]?.count ?? 0) + delta
                s.ours[name] = (count, delta > 0 ? now : (s.ours[name]?.touched ?? now))
                return (name, count)
            }
        }
        var totals: [String: Int] = [:]
        var start = 0
        while start < counts.count {
            let chunk = counts[start..<min(start + 64, counts.count)]
            start += 64
            var ops: [[String: Any]] = []
            for (name, count) in chunk {
                let range = base + name + "/"
                if count > 0 {
                    ops.append(["request_put": ["key": EtcdClient.b64(range + writer), "value": EtcdClient.b64(String(count)), "lease": leaseID]])
                }
                ops.append(["request_range": ["key": EtcdClient.b64(range), "range_end": EtcdClient.prefixEnd(range)]])
            }
            let reply = try await client.post("/v3/kv/txn", ["compare": [] as [Any], "success": ops])
            let responses = reply["responses"] as? [[String: Any]] ?? []
            let ranges = responses.compactMap { $0["response_range"] as? [String: Any] }
            guard ranges.count == chunk.count else { throw EtcdError.unexpected("txn answered \(ranges.count) ranges for \(chunk.count) counters") }
            for ((name, _), range) in zip(chunk, ranges) {
                let kvs = range["kvs"] as? [[String: Any]] ?? []
                totals[name] = kvs.reduce(0) { sum, kv in sum + (EtcdClient.unb64(kv["value"]).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0) }
            }
        }
        return totals
    }
}
