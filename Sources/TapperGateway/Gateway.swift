import Atomics
import CoreMetrics
import NIOCore
import NIOHTTP1
import TapperCore

/// The gateway's shared core: configuration, the routing state, per-reactor contexts and
/// the counters the admin endpoints report. Shared by every connection handler.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let state: GatewayState
    public let health: any HealthView
    public let balancers: BalancerFactory
    /// The data path's threads, one epoll loop each, and the state each one owns.
    let reactors: [Reactor]
    let loops: [ReactorBound<LoopContext>]
    let inFlight = ManagedAtomic<Int>(0)
    let openConnections = ManagedAtomic<Int>(0)
    let totalRequests = ManagedAtomic<Int>(0)
    let startedAt = ContinuousClock.now
    let outcomes: (any OutcomeObserver)?
    public let metrics = GatewayMetrics()
    /// The configured timeouts as NIO time amounts, converted once: the data path moves a
    /// connection's deadline several times per request.
    let timeouts: Timeouts

    struct Timeouts: Sendable {
        var headerRead: TimeAmount
        var idle: TimeAmount
        var upstream: TimeAmount
    }

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
        timeouts = Timeouts(
            headerRead: configuration.headerReadTimeout.timeAmount, idle: configuration.idleTimeout.timeAmount,
            upstream: configuration.upstreamTimeout.timeAmount
        )
        let threads = configuration.threads > 0 ? configuration.threads : System.coreCount
        reactors = Reactor.start(count: threads)
        // Created here, used only on its reactor from now on.
        loops = reactors.map { ReactorBound(LoopContext(reactor: $0, configuration: configuration)) }
        if let monitor = health as? HealthMonitor {
            // Health follows the catalog whether or not active probes run.
            state.onChange { monitor.sync($0) }
            monitor.sync(state.snapshot)
        }
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

    func requestStarted() {
        metrics.inFlight.record(inFlight.wrappingIncrementThenLoad(ordering: .relaxed))
    }

    /// Client connections open right now.
    public var openConnectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// Requests being proxied right now.
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    func requestFinished(exchange: Exchange, loop: LoopContext) {
        metrics.inFlight.record(inFlight.wrappingDecrementThenLoad(ordering: .relaxed))
        totalRequests.wrappingIncrement(ordering: .relaxed)
        let nanos = (NIODeadline.now() - exchange.started).nanoseconds
        let statusClass = max(0, exchange.status / 100)
        var slot = -1
        if exchange.entryIndex >= 0, exchange.snapshotGeneration == loop.snapshotGeneration, statusClass < 8 {
            slot = exchange.entryIndex * 8 + statusClass
            if slot < loop.routeMetrics.count, let m = loop.routeMetrics[slot], m.method == exchange.method {
                m.counter.increment()
                m.latency.record(nanoseconds: nanos)
                if loop.accessLog != nil { logAccess(exchange, loop: loop) }
                return
            }
        }
        let key = GatewayMetrics.RequestKey(
            service: exchange.service, route: exchange.routeTemplate, method: exchange.method, statusClass: max(0, exchange.status / 100)
        )
        if let counter = loop.requestCounters[key] {
            counter.increment()
        } else {
            let counter = metrics.requests(key)
            loop.requestCounters[key] = counter
            counter.increment()
        }
        let latency: LatencyHistograms.Shard
        if let shard = loop.latencyShards[exchange.service] {
            latency = shard
        } else {
            latency = metrics.upstreamLatency.makeShard(service: exchange.service)
            loop.latencyShards[exchange.service] = latency
        }
        latency.record(nanoseconds: nanos)
        if slot >= 0, let counter = loop.requestCounters[key] {
            if loop.routeMetrics.count <= slot { loop.routeMetrics.append(contentsOf: repeatElement(nil, count: slot + 1 - loop.routeMetrics.count)) }
            loop.routeMetrics[slot] = LoopContext.RouteMetrics(method: exchange.method, counter: counter, latency: latency)
        }
        if loop.accessLog != nil { logAccess(exchange, loop: loop) }
    }

    private func logAccess(_ exchange: Exchange, loop: LoopContext) {
        if let log = loop.accessLog {
            let ms = Double((NIODeadline.now() - exchange.started).nanoseconds) / 1e6
            log.append(
                "method=\(exchange.method) path=\(AccessLogBuffer.value(exchange.path)) status=\(exchange.status) service=\(exchange.service) route=\(AccessLogBuffer.value(exchange.routeTemplate)) instance=\(exchange.target?.instanceID ?? "-") duration_ms=\(String(format: ms)) bytes=\(exchange.responseBytes) outcome=\(exchange.outcome) request_id=\(exchange.requestID)"
            )
        }
    }

    func localResponse(method: String, path: String, status: Int, requestID: String, started: NIODeadline, loop: LoopContext) {
        totalRequests.wrappingIncrement(ordering: .relaxed)
        if let log = loop.accessLog {
            let ms = Double((NIODeadline.now() - started).nanoseconds) / 1e6
            log.append("method=\(method) path=\(AccessLogBuffer.value(path)) status=\(status) service=- duration_ms=\(String(format: ms)) request_id=\(requestID)")
        }
    }

    // MARK: balancing

    /// Picks a candidate of `exchange` not yet tried, with the service's balancer.
    /// - Returns: the candidate's index in `exchange.candidates`, or nil when all were tried.
    func pick(for exchange: Exchange, loop: LoopContext) -> Int? {
        let candidates = exchange.candidates
        let service = exchange.service
        if exchange.tried.isEmpty {
            // The common case: nothing to filter, and the balancer input is precomputed.
            if candidates.count == 1 { return 0 }
            if candidates.isEmpty { return nil }
            let i = loop.balancer(for: service, make: makeBalancer).balancer.pick(from: exchange.balancerCandidates)
            return max(0, min(i, candidates.count - 1))
        }
        var usable: [Int] = []
        for i in candidates.indices where !exchange.tried.contains(i) { usable.append(i) }
        guard !usable.isEmpty else { return nil }
        if usable.count == 1 { return usable[0] }
        let i = loop.balancer(for: service, make: makeBalancer).balancer.pick(from: usable.map { exchange.balancerCandidates[$0] })
        return usable[max(0, min(i, usable.count - 1))]
    }

    func makeBalancer(for service: String) -> any LoadBalancer {
        let name = state.snapshot.balancerOverrides[service] ?? configuration.loadBalancer
        return balancers.make(name) ?? balancers.make(configuration.loadBalancer) ?? RoundRobinBalancer()
    }

    func balancerFinished(_ target: UpstreamTarget, loop: LoopContext) {
        loop.existingBalancer(for: target.service)?.balancer.requestFinished(target.instanceID)
    }

    func noteOutcome(target: UpstreamTarget?, success: Bool) {
        guard let target, let outcomes else { return }
        outcomes.observe(target: target, success: success)
    }
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
