import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TapperCore

/// How the gateway's rate limits are shared with other gateways (`--rate-limit-store`): the
/// store that adds their counters up, what to do while it is down, and how often to sync.
public final class LimitSharing: Sendable {
    public enum Failure: String, Sendable, CaseIterable {
        /// While the store is down each gateway limits on its own counts (the limit is per gateway).
        case open
        /// While the store is down every limited request gets 503.
        case closed
    }

    public let store: any SharedCounterStore
    public let failure: Failure
    public let interval: Duration
    /// Wall-clock minus monotonic nanoseconds: the gateways' windows must agree, and only the
    /// wall clock is the same on every machine.
    let wallOffset: Int64
    private let down = Atomic<Bool>(false)
    private let syncs = Atomic<Int>(0)
    private let errorText = Mutex<String?>(nil)

    public init(store: any SharedCounterStore, failure: Failure, interval: Duration = .milliseconds(100)) {
        self.store = store
        self.failure = failure
        self.interval = interval
        let wall = Int64(WallClock.nanoseconds())
        wallOffset = wall - Int64(NIODeadline.now().uptimeNanoseconds)
    }

    /// Whether the last sync failed.
    public var isDown: Bool { down.load(ordering: .relaxed) }

    /// Successful syncs so far.
    public var syncCount: Int { syncs.load(ordering: .relaxed) }
    /// Why the last sync failed (nil after a success).
    public var lastError: String? { errorText.withLock { $0 } }

    /// Records a sync's outcome. - Returns: whether the store's state changed (log it).
    func recordSync(error: String?) -> Bool {
        errorText.withLock { $0 = error }
        if error == nil { syncs.add(1, ordering: .relaxed) }
        return down.exchange(error != nil, ordering: .relaxed) != (error != nil)
    }
}

/// One shared limit's per-key windows (``SharedWindow``), striped like ``RateLimiter``'s buckets.
final class SharedLimitCounters: Sendable {
    /// Names this limit's counters in the store, the same on every gateway with the same limit
    /// (`gateway 100/s`, `service users 10/s`).
    let scope: String
    let limit: RateLimit
    let sharing: LimitSharing
    private final class Stripe: Sendable {
        let windows = Mutex<[String: SharedWindow]>([:])
    }
    private let stripes: [Stripe]
    static let stripeCount = 64
    static let maxKeysPerStripe = 4096

    init(scope: String, limit: RateLimit, sharing: LimitSharing) {
        self.scope = scope
        self.limit = limit
        self.sharing = sharing
        stripes = (0..<Self.stripeCount).map { _ in Stripe() }
    }

    func wall(_ uptime: UInt64) -> UInt64 { UInt64(max(0, Int64(uptime) + sharing.wallOffset)) }

    func take(_ key: String, uptime: UInt64) -> TokenBucket.Decision {
        if sharing.failure == .closed && sharing.isDown {
            return TokenBucket.Decision(allowed: false, remaining: 0, retryAfterSeconds: 1, resetSeconds: 1, storeUnavailable: true)
        }
        let now = wall(uptime)
        let limit = self.limit
        var h: UInt32 = 2_166_136_261
        for byte in key.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
        return stripes[Int(h % UInt32(Self.stripeCount))].windows.withLock { windows in
            if windows.count >= Self.maxKeysPerStripe, windows[key] == nil {
                windows = windows.filter { !$0.value.isIdle(limit, now: now) }
                if windows.count >= Self.maxKeysPerStripe {
                    for _ in 0..<(Self.maxKeysPerStripe / 8) { windows.remove(at: windows.startIndex) }
                }
            }
            return windows[key, default: SharedWindow(limit: limit, now: now)].take(limit, now: now)
        }
    }

    /// The counter name of `key` in `window`.
    func counter(_ key: String, window: UInt64) -> String { "\(scope)|\(window)|\(key)" }

    /// Every live key's requests since the last sync (0 for keys to refresh only), by counter name.
    func drain(uptime: UInt64) -> [String: (key: String, window: UInt64, delta: Int)] {
        let now = wall(uptime)
        var out: [String: (key: String, window: UInt64, delta: Int)] = [:]
        for stripe in stripes {
            stripe.windows.withLock { windows in
                for key in Array(windows.keys) {
                    if windows[key]!.isIdle(limit, now: now) {
                        windows.removeValue(forKey: key)
                        continue
                    }
                    let (w, d) = windows[key]!.drain(limit, now: now)
                    out[counter(key, window: w)] = (key, w, d)
                }
            }
        }
        return out
    }

    /// Records the store's totals.
    func synced(_ totals: [(key: String, window: UInt64, total: Int)]) {
        for t in totals {
            var h: UInt32 = 2_166_136_261
            for byte in t.key.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
            stripes[Int(h % UInt32(Self.stripeCount))].windows.withLock { windows in windows[t.key]?.synced(window: t.window, total: t.total) }
        }
    }

    var keyCount: Int { stripes.reduce(0) { $0 + $1.windows.withLock { $0.count } } }
}

/// Adds the gateway's shared-limit counts to the store every ``LimitSharing/interval`` and
/// takes the totals back, for every limit the current routing snapshot holds; notes when the
/// store goes down and comes back (the limits fail open or closed meanwhile).
public struct SharedLimitSync: Service {
    let state: GatewayState
    let sharing: LimitSharing
    let logger: Logger

    public init(state: GatewayState, sharing: LimitSharing, logger: Logger) {
        self.state = state
        self.sharing = sharing
        self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: sharing.interval)
                await syncOnce()
            }
        }
    }

    /// The shared counters of the limits requests use now.
    func counters() -> [SharedLimitCounters] {
        let snapshot = state.snapshot
        var seen: Set<ObjectIdentifier> = []
        var out: [SharedLimitCounters] = []
        func add(_ limiter: RateLimiter?) {
            guard let shared = limiter?.shared, seen.insert(ObjectIdentifier(shared)).inserted else { return }
            out.append(shared)
        }
        add(snapshot.policy.gatewayLimiter)
        for limits in snapshot.entryLimiters {
            add(limits?.service)
            add(limits?.route)
        }
        return out
    }

    /// One round trip: adds what was counted since the last, reads the totals.
    func syncOnce() async {
        let all = counters()
        guard !all.isEmpty else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var deltas: [String: Int] = [:]
        var owners: [(SharedLimitCounters, [String: (key: String, window: UInt64, delta: Int)])] = []
        var longest: UInt64 = 0
        for c in all {
            let drained = c.drain(uptime: now)
            guard !drained.isEmpty else { continue }
            for (name, d) in drained { deltas[name] = d.delta }
            owners.append((c, drained))
            longest = max(longest, c.limit.windowNanos)
        }
        guard !deltas.isEmpty else { return }
        do {
            // A counter must outlive the window after its own, when it is the "previous" one.
            let totals = try await sharing.store.add(deltas, expiresAfter: .nanoseconds(Int64(2 * longest)) + .seconds(5))
            for (c, drained) in owners {
                c.synced(drained.compactMap { name, d in totals[name].map { (d.key, d.window, $0) } })
            }
            if sharing.recordSync(error: nil) { logger.notice("rate-limit store \(sharing.store.displayName) is back; limits are shared again") }
        } catch {
            if sharing.recordSync(error: "\(error)") {
                logger.error(
                    "rate-limit store \(sharing.store.displayName) is unreachable (\(error)); limits fail \(sharing.failure.rawValue): \(sharing.failure == .open ? "each gateway counts on its own" : "limited requests get 503")"
                )
            }
        }
    }
}
