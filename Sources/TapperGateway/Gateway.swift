import Atomics
import CoreMetrics
import NIOCore
import NIOHTTP1
import Synchronization
import TapperCore

/// The gateway's shared core: configuration, the routing state, health, balancer names and
/// the counters the admin endpoints report. Immutable or atomic, shared by every reactor; the
/// per-loop policy (picking instances, recording requests) is ``LoopContext``'s, and the
/// reactors themselves are started by ``GatewayServer`` when it runs.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let state: GatewayState
    public let health: any HealthView
    public let balancers: BalancerFactory
    let inFlight = ManagedAtomic<Int>(0)
    let openConnections = ManagedAtomic<Int>(0)
    let totalRequests = ManagedAtomic<Int>(0)
    let openTunnels = ManagedAtomic<Int>(0)
    /// HTTP/2 counts, both towards clients and towards h2c instances.
    let h2 = H2Counters()
    let startedAt = ContinuousClock.now
    let outcomes: (any OutcomeObserver)?
    public let metrics = GatewayMetrics()
    /// Per-route rates and latency and recent 5xx, for `/_tapper/traffic` and the dashboard.
    public let traffic = TrafficStats()
    /// The merged OpenAPI document `/openapi.json` serves (``OpenAPICollector`` keeps it current).
    public let docs: DocsState
    /// The certificates the HTTPS listener serves now (nil without `--tls-port`).
    let tlsContexts = Mutex<TLSContexts?>(nil)
    let tlsReloadFailureCount = ManagedAtomic<Int>(0)
    /// The HTTPS listener's port once bound.
    let tlsBoundPort = ManagedAtomic<Int>(0)
    /// Certificate changes that did not load (the previous certificates stayed in use).
    public var tlsReloadFailures: Int { tlsReloadFailureCount.load(ordering: .relaxed) }

    /// - Parameters:
    ///   - configuration: settings.
    ///   - state: the routing state discovery updates.
    ///   - health: which instances may receive traffic.
    ///   - balancers: balancer names available to `--load-balancer` and registrations.
    ///   - outcomes: told about every upstream success and failure (passive health).
    public init(
        configuration: GatewayConfiguration, state: GatewayState, health: any HealthView = AllHealthy(),
        balancers: BalancerFactory = BalancerFactory(), outcomes: (any OutcomeObserver)? = nil
    ) {
        self.configuration = configuration
        self.state = state
        self.health = health
        self.balancers = balancers
        self.outcomes = outcomes
        state.setTrafficPolicy(limit: configuration.rateLimiter?.limit, key: configuration.rateLimitKey)
        self.docs = DocsState(configuration: configuration)
        if let monitor = health as? HealthMonitor {
            // Health follows the catalog whether or not active probes run.
            state.onChange { monitor.sync($0) }
            monitor.sync(state.snapshot)
        }
    }

    /// Changes the gateway-wide rate limit and `--rate-limit-key` while serving (a reloaded
    /// `--config`); requests see it at once, buckets of an unchanged limit are kept.
    /// - Returns: whether anything changed.
    @discardableResult
    public func updateRateLimit(_ limit: RateLimit?, key: String) throws(FieldError) -> Bool {
        state.setTrafficPolicy(limit: limit, key: try RateLimiter.Key(parsing: key))
    }

    /// The admin endpoints' responder.
    var admin: AdminResponder { AdminResponder(gateway: self) }

    // MARK: counters

    func connectionOpened() {
        metrics.openConnections.record(openConnections.wrappingIncrementThenLoad(ordering: .relaxed))
    }

    func connectionClosed() {
        metrics.openConnections.record(openConnections.wrappingDecrementThenLoad(ordering: .relaxed))
    }

    func tunnelOpened() {
        metrics.tunnelsTotal.increment()
        metrics.openTunnels.record(openTunnels.wrappingIncrementThenLoad(ordering: .relaxed))
    }

    func tunnelClosed() {
        metrics.openTunnels.record(openTunnels.wrappingDecrementThenLoad(ordering: .relaxed))
    }

    /// Upgraded connections (WebSocket) open right now.
    public var openTunnelCount: Int { openTunnels.load(ordering: .relaxed) }

    func requestStarted() {
        metrics.inFlight.record(inFlight.wrappingIncrementThenLoad(ordering: .relaxed))
    }

    /// Client connections open right now.
    public var openConnectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// Requests being proxied right now.
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    /// The I/O threads `run` starts: `--threads`, or one per CPU the process may use (its
    /// affinity mask and cgroup CPU quota, see ``ProcessCPUs``).
    var threadCount: Int { configuration.threads > 0 ? configuration.threads : ProcessCPUs.usable() }
}

/// Told about each upstream attempt's outcome (passive health checking plugs in here).
public protocol OutcomeObserver: Sendable {
    func observe(target: UpstreamTarget, success: Bool)
}

/// Named balancer constructors: the built-in ones plus any a library user registers.
public struct BalancerFactory: Sendable {
    var makers: [String: @Sendable () -> any LoadBalancer]

    public init() {
        makers = [
            "round-robin": { RoundRobinBalancer(start: UInt.random(in: 0..<1024)) },
            "random": { RandomBalancer(generator: SplitMix64(seed: UInt64.random(in: 0...UInt64.max))) },
            "least-connections": { LeastConnectionsBalancer(generator: SplitMix64(seed: UInt64.random(in: 0...UInt64.max))) },
            "weighted": { WeightedBalancer() },
        ]
    }

    /// Adds (or replaces) a balancer available by `name`.
    public mutating func register(_ name: String, _ make: @escaping @Sendable () -> any LoadBalancer) {
        makers[name] = make
    }

    public func make(_ name: String) -> (any LoadBalancer)? { makers[name]?() }

    public var names: [String] { makers.keys.sorted() }
}

extension String {
    init(format value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let frac = String(thousandths % 1000).leftPadded(to: 3)
        self = "\(thousandths / 1000).\(frac)"
    }
}
