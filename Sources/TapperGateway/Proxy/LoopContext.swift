import CoreMetrics
import NIOCore
import TapperCore

/// State owned by one event loop: its upstream pools, balancers, request-id generator and
/// access-log buffer. Only ever touched on that loop, so it needs no lock.
final class LoopContext {
    let eventLoop: any EventLoop
    let pool: UpstreamPool
    /// Balancers by service name, boxed so a request looks one up once and uses it in place.
    var balancers: [String: BalancerBox] = [:]
    /// The last balancer looked up: most loops serve one hot service, and comparing a short
    /// name costs less than hashing it.
    private var lastBalancer: (service: String, box: BalancerBox)?
    var requestIDs = RequestIDGenerator()
    var accessLog: AccessLogBuffer?
    /// Metric handles already looked up on this loop.
    var requestCounters: [GatewayMetrics.RequestKey: CoreMetrics.Counter] = [:]
    var latencyTimers: [String: CoreMetrics.Timer] = [:]
    /// This loop's copy of the routing snapshot and the ``GatewayState/generation`` it is from.
    private var snapshot = RoutingSnapshot.empty
    private(set) var snapshotGeneration = -1
    /// Metric handles per route-table entry and status class (`entry * 8 + class`) of the
    /// current snapshot: a finished request finds its counter by index, without hashing
    /// service, route and method. Emptied when the snapshot changes.
    var routeMetrics: [RouteMetrics?] = []

    /// The handles one route entry's requests of one method and status class record to.
    struct RouteMetrics {
        var method: String
        var counter: CoreMetrics.Counter
        var timer: CoreMetrics.Timer
    }

    init(eventLoop: any EventLoop, configuration: GatewayConfiguration) {
        self.eventLoop = eventLoop
        self.pool = UpstreamPool(
            eventLoop: eventLoop,
            maxIdlePerKey: configuration.maxIdleUpstreamConnections,
            connectTimeout: .nanoseconds(Int64(configuration.upstreamTimeout.nanoseconds))
        )
        if configuration.accessLog { accessLog = AccessLogBuffer(eventLoop: eventLoop) }
    }
}

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
    /// The balancer of `service`, created by `make` on first use.
    func balancer(for service: String, make: (String) -> any LoadBalancer) -> BalancerBox {
        if let last = lastBalancer, last.service == service { return last.box }
        let box: BalancerBox
        if let existing = balancers[service] {
            box = existing
        } else {
            box = BalancerBox(make(service))
            balancers[service] = box
        }
        lastBalancer = (service, box)
        return box
    }

    /// The balancer of `service` if one was made.
    func existingBalancer(for service: String) -> BalancerBox? {
        if let last = lastBalancer, last.service == service { return last.box }
        return balancers[service]
    }

    /// The current routing snapshot: the loop's own copy, refreshed from `state` (under its lock)
    /// only after a change. Saves a lock and the snapshot's retains on every request.
    func routing(_ state: GatewayState) -> RoutingSnapshot {
        let generation = state.generation
        if generation != snapshotGeneration {
            snapshot = state.snapshot
            snapshotGeneration = generation
            routeMetrics = []
        }
        return snapshot
    }
}

@available(*, unavailable)
extension LoopContext: Sendable {}

extension Duration {
    var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }

    var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }
}
