import CoreMetrics
import NIOCore
import TapperCore

/// State owned by one event loop: its upstream pools, balancers, request-id generator and
/// access-log buffer. Only ever touched on that loop, so it needs no lock.
final class LoopContext {
    let eventLoop: any EventLoop
    let pool: UpstreamPool
    var balancers: [String: any LoadBalancer] = [:]
    var requestIDs = RequestIDGenerator()
    var accessLog: AccessLogBuffer?
    /// Metric handles already looked up on this loop.
    var requestCounters: [GatewayMetrics.RequestKey: CoreMetrics.Counter] = [:]
    var latencyTimers: [String: CoreMetrics.Timer] = [:]

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

@available(*, unavailable)
extension LoopContext: Sendable {}

extension Duration {
    var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }
}
