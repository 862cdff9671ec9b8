import Synchronization
import NIOConcurrencyHelpers
import TapperCore

/// The gateway's shared, swappable view of the world: the current routing snapshot and how
/// fresh it is. Readers take a lock only long enough to copy a reference.
public final class GatewayState: Sendable {
    /// How discovery is doing, for `/_tapper/status`.
    public struct DiscoveryStatus: Sendable {
        /// Where the catalog comes from (a URL or "embedded").
        public var source: String
        public var reachable: Bool
        /// When the current table was built.
        public var tableBuiltAt: ContinuousClock.Instant
        /// Last time the registry answered.
        public var lastContact: ContinuousClock.Instant?
        public var lastError: String?
    }

    private let snapshotBox: NIOLockedValueBox<RoutingSnapshot>
    /// Bumped after each installed snapshot, so the I/O threads can keep their own copy and re-read
    /// ``snapshot`` (a lock and a struct copy) only when it changed.
    private let snapshotGeneration = Atomic<Int>(0)
    private let statusBox: NIOLockedValueBox<DiscoveryStatus>
    private let changeListeners = NIOLockedValueBox<[@Sendable (RoutingSnapshot) -> Void]>([])
    /// The services' and routes' rate limiters, kept across snapshots.
    private let limiters: RateLimiterCache
    /// How rate limits are shared with other gateways (nil: each gateway counts alone).
    public let limitSharing: LimitSharing?
    /// What changes live (``setTrafficPolicy(limit:key:)``), put in every snapshot.
    private let policyBox = NIOLockedValueBox(TrafficPolicy())
    /// How instances whose registration names no `protocol` are spoken to (`--upstream-protocol`).
    public let upstreamProtocol: UpstreamProtocol

    public init(source: String, limitSharing: LimitSharing? = nil, upstreamProtocol: UpstreamProtocol = .http1) {
        self.limitSharing = limitSharing
        self.upstreamProtocol = upstreamProtocol
        limiters = RateLimiterCache(sharing: limitSharing)
        snapshotBox = NIOLockedValueBox(.empty)
        statusBox = NIOLockedValueBox(DiscoveryStatus(source: source, reachable: false, tableBuiltAt: .now))
    }

    /// The routing snapshot requests should use now.
    public var snapshot: RoutingSnapshot { snapshotBox.withLockedValue { $0 } }

    /// Changes whenever ``snapshot`` does (read it after this, not before).
    public var generation: Int { snapshotGeneration.load(ordering: .acquiring) }

    public var discoveryStatus: DiscoveryStatus { statusBox.withLockedValue { $0 } }

    /// Installs a new catalog (if it differs) and records a successful contact.
    public func install(_ catalog: CatalogSnapshot) {
        let now = ContinuousClock.now
        var installed: RoutingSnapshot?
        let current = snapshotBox.withLockedValue { $0.catalog }
        if current != catalog || current.index == 0 {
            let fresh = RoutingSnapshot(catalog: catalog, limiters: limiters, policy: policyBox.withLockedValue { $0 }, upstreamProtocol: upstreamProtocol)
            snapshotBox.withLockedValue { $0 = fresh }
            snapshotGeneration.add(1, ordering: .releasing)
            installed = fresh
        }
        statusBox.withLockedValue { s in
            s.reachable = true
            s.lastContact = now
            s.lastError = nil
            if installed != nil { s.tableBuiltAt = now }
        }
        if let installed {
            for listener in changeListeners.withLockedValue({ $0 }) { listener(installed) }
        }
    }

    /// The gateway-wide rate limit and the key every limit counts by, as requests see them now.
    public var trafficPolicy: (limit: RateLimit?, key: String) {
        policyBox.withLockedValue { ($0.gatewayLimiter?.limit, $0.rateLimitKey.description) }
    }

    /// Changes the gateway-wide rate limit (nil: none) and the key of every limit, live: the next
    /// request on every I/O thread sees it. A limit and key left as they were keep their buckets.
    /// - Returns: whether anything changed.
    @discardableResult
    func setTrafficPolicy(limit: RateLimit?, key: RateLimiter.Key) -> Bool {
        let changed: Bool = policyBox.withLockedValue { policy in
            let same = policy.rateLimitKey == key && policy.gatewayLimiter?.limit == limit
            if same { return false }
            policy.rateLimitKey = key
            policy.gatewayLimiter = limit.map { RateLimiter(limit: $0, key: key, scope: "gateway", sharing: limitSharing) }
            return true
        }
        guard changed else { return false }
        let policy = policyBox.withLockedValue { $0 }
        let fresh: RoutingSnapshot = snapshotBox.withLockedValue { current in
            current = RoutingSnapshot(catalog: current.catalog, limiters: limiters, policy: policy, upstreamProtocol: upstreamProtocol)
            return current
        }
        snapshotGeneration.add(1, ordering: .releasing)
        for listener in changeListeners.withLockedValue({ $0 }) { listener(fresh) }
        return true
    }

    /// Records that the registry could not be reached; routing keeps the last table.
    /// - Returns: true when this is the first failure after a success (log it once).
    @discardableResult
    public func markUnreachable(_ error: String) -> Bool {
        statusBox.withLockedValue { s in
            let first = s.reachable || s.lastError == nil
            s.reachable = false
            s.lastError = error
            return first
        }
    }

    /// Calls `listener` after each installed change (health checkers use it).
    public func onChange(_ listener: @escaping @Sendable (RoutingSnapshot) -> Void) {
        changeListeners.withLockedValue { $0.append(listener) }
    }
}
