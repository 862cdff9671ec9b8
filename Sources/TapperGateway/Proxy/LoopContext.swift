import CoreMetrics
import NIOCore
import TapperCore

/// State owned by one reactor: its client connections, upstream pools, balancers, request-id
/// generator and access-log buffer, and the per-loop policy over them (picking instances,
/// recording finished requests: `LoopContext+Balancing.swift`, `LoopContext+Recording.swift`).
/// Only ever touched on that reactor, so it needs no lock.
final class LoopContext {
    let reactor: Reactor
    /// The shared, immutable configuration and the state every loop reads.
    let gateway: Gateway
    /// Timeouts and limits of every connection's state machine, converted once.
    let machineSettings: ProxyConnection.StateMachine.Settings
    /// The open client connections (graceful shutdown asks each to finish).
    private var clients: [ObjectIdentifier: any DrainableClient] = [:]
    /// This reactor's registrations of the listening sockets.
    var acceptors: [Acceptor] = []
    /// What new HTTPS connections on this loop use (replaced when certificates change).
    var tlsContexts: TLSContexts?
    private var quiescing = false
    private var onDrained: (() -> Void)?
    let pool: UpstreamPool
    /// Balancers by service name, boxed so a request looks one up once and uses it in place.
    var balancers: [String: BalancerBox] = [:]
    /// The last balancer looked up: most loops serve one hot service, and comparing a short
    /// name costs less than hashing it.
    var lastBalancer: (service: String, box: BalancerBox)?
    /// Version pickers by service, for services whose versions split the traffic.
    var versionPickers: [String: VersionPicker] = [:]
    var requestIDs = RequestIDGenerator()
    var accessLog: AccessLogBuffer?
    /// Finished spans on their way to the exporter (nil: tracing is off). A `let`, so that the
    /// I/O thread reads it without retaining it.
    let spans: SpanBuffer?
    /// ``spans``, to be used without a retain (recording a span retained and released it).
    let spansRef: Unmanaged<SpanBuffer>?
    /// Metric handles already looked up on this loop.
    var requestCounters: [GatewayMetrics.RequestKey: CoreMetrics.Counter] = [:]
    var latencyShards: [String: LatencyHistograms.Shard] = [:]
    /// This loop's `/_tapper/traffic` counters by `service method route`.
    var trafficSlots: [String: TrafficStats.Slot] = [:]
    /// This loop's copy of the routing snapshot and the ``GatewayState/generation`` it is from.
    private var snapshot = SnapshotRef(.empty)
    private(set) var snapshotGeneration = -1
    /// Upstream connections with a request written but not yet flushed (see
    /// ``flushAtEndOfTick(_:)``).
    private var upstreamsToFlush: [UpstreamHandler] = []
    /// Metric handles per route-table entry and status class (`entry * 8 + class`) of the
    /// current snapshot: a finished request finds its counter by index, without hashing
    /// service, route and method. Emptied when the snapshot changes.
    var routeMetrics: [RouteMetrics?] = []

    /// Recycled buffers for the request and response heads this loop builds.
    var heads = HeadBuffers()

    /// The handles one route entry's requests of one method and status class record to.
    struct RouteMetrics {
        var method: String
        var counter: CoreMetrics.Counter
        var latency: LatencyHistograms.Shard
        var traffic: TrafficStats.Slot
    }

    init(reactor: Reactor, gateway: Gateway) {
        self.reactor = reactor
        self.gateway = gateway
        let configuration = gateway.configuration
        machineSettings = ProxyConnection.StateMachine.Settings(
            headerReadTimeout: configuration.headerReadTimeout.timeAmount, idleTimeout: configuration.idleTimeout.timeAmount,
            upstreamTimeout: configuration.upstreamTimeout.timeAmount, maxBodyBytes: configuration.maxBodyBytes,
            retry: RetryPolicy(maxAttempts: configuration.maxAttempts), tunnelIdleTimeout: configuration.tunnelIdleTimeout.timeAmount
        )
        self.pool = UpstreamPool(
            reactor: reactor,
            maxIdlePerKey: configuration.maxIdleUpstreamConnections,
            connectTimeout: .nanoseconds(Int64(configuration.upstreamTimeout.nanoseconds)),
            h2Counters: gateway.h2
        )
        if configuration.accessLog { accessLog = AccessLogBuffer(reactor: reactor) }
        let spans = configuration.tracing.map { SpanBuffer(reactor: reactor, exporter: $0) }
        self.spans = spans
        spansRef = spans.map { .passUnretained($0) }
    }

    // MARK: client connections and graceful shutdown

    func clientOpened(_ handler: any DrainableClient) {
        clients[ObjectIdentifier(handler)] = handler
        if quiescing { handler.quiesce() }
    }

    func clientClosed(_ handler: any DrainableClient) {
        clients[ObjectIdentifier(handler)] = nil
        if clients.isEmpty, let done = onDrained {
            onDrained = nil
            done()
        }
    }

    /// Stops accepting, asks every client connection to close once its exchange is done, and
    /// calls `drained` when none is left.
    func quiesce(drained: @escaping () -> Void) {
        quiescing = true
        for acceptor in acceptors { acceptor.stop() }
        for handler in Array(clients.values) { handler.quiesce() }
        if clients.isEmpty {
            drained()
        } else {
            onDrained = drained
        }
    }

    /// Closes every connection left: clients (after the drain timeout) and pooled upstreams.
    func closeEverything() {
        for handler in Array(clients.values) { handler.closeNow() }
        pool.closeAll()
        accessLog?.flush()
        spans?.flush()
    }
}

/// A loop's routing snapshot behind one reference: handing it out costs one retain instead of
/// copying the snapshot's fields.
final class SnapshotRef {
    let value: RoutingSnapshot
    /// The fields the data path reads, stored: a request reads them in place, where a computed
    /// property returned a copy (and retained each of the table's arrays) on every access.
    let table: RouteTable
    let targets: [[UpstreamTarget]]
    let balancerCandidates: [[BalancerCandidate]]
    let versionSplits: [VersionSplit?]
    let entryLimiters: [EntryLimiters?]
    let gatewayLimiter: RateLimiter?
    let rateLimitKey: RateLimiter.Key

    init(_ value: RoutingSnapshot) {
        self.value = value
        table = value.table
        targets = value.targets
        balancerCandidates = value.balancerCandidates
        versionSplits = value.versionSplits
        entryLimiters = value.entryLimiters
        gatewayLimiter = value.policy.gatewayLimiter
        rateLimitKey = value.policy.rateLimitKey
    }
}

@available(*, unavailable)
extension SnapshotRef: Sendable {}

/// A load balancer's state, shared by the requests of one service on one loop.
final class BalancerBox {
    var balancer: any LoadBalancer

    init(_ balancer: any LoadBalancer) {
        self.balancer = balancer
    }
}

@available(*, unavailable)
extension BalancerBox: Sendable {}

extension LoopContext {
    /// Flushes `upstream` once the loop has handled every I/O event of the current tick, so
    /// the requests of one tick reach the upstreams in one burst (like Netty's flush
    /// consolidation). Each flush wakes the upstream's process; spread between request
    /// parsing, those wake-ups preempted the gateway about every other request when the
    /// upstream shares its CPU, and each one it answered alone.
    func flushAtEndOfTick(_ upstream: UpstreamHandler) {
        upstreamsToFlush.append(upstream)
        if upstreamsToFlush.count == 1 {
            reactor.later { [self] in
                // A flush that fails can start a retry that appends here: the loop sees it.
                var i = 0
                while i < upstreamsToFlush.count {
                    let u = upstreamsToFlush[i]
                    i += 1
                    u.flush()
                }
                upstreamsToFlush.removeAll(keepingCapacity: true)
            }
        }
    }

    /// The current routing snapshot: the loop's own copy, refreshed from `state` (under its lock)
    /// only after a change. Saves a lock and the snapshot's retains on every request.
    func routing(_ state: GatewayState) -> SnapshotRef {
        let generation = state.generation
        if generation != snapshotGeneration {
            snapshot = SnapshotRef(state.snapshot)
            snapshotGeneration = generation
            routeMetrics = []
        }
        return snapshot
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}

extension Duration {
    var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }
}
