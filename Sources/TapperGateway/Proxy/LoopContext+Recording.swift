import Atomics
import CoreMetrics
import NIOCore

/// What a finished request leaves behind, per loop: its counter and latency (handles cached
/// per route entry, so the common case hashes nothing) and its access-log line.
extension LoopContext {
    /// `exchange` is over: its upstream connection goes back to the pool (`releasingUpstream`,
    /// when still open) or is closed, its balancer hears of the attempt, and it is recorded.
    func finish(_ exchange: Exchange, releasingUpstream: Bool = false) {
        if let upstream = exchange.detachUpstream() {
            if releasingUpstream && upstream.isActive {
                pool.release(upstream)
            } else {
                upstream.close()
            }
        }
        attemptFinished(exchange)
        requestFinished(exchange)
    }

    func requestFinished(_ exchange: Exchange) {
        let gateway = self.gateway
        gateway.metrics.inFlight.record(gateway.inFlight.wrappingDecrementThenLoad(ordering: .relaxed))
        gateway.totalRequests.wrappingIncrement(ordering: .relaxed)
        let finished = NIODeadline.now()
        let nanos = (finished - exchange.started).nanoseconds
        if exchange.trace != nil { recordSpan(exchange, finished: finished) }
        let statusClass = max(0, exchange.status / 100)
        let entryIndex = exchange.route.entryIndex
        var slot = -1
        if exchange.snapshotGeneration == snapshotGeneration, statusClass < 8 {
            slot = entryIndex * 8 + statusClass
            if slot < routeMetrics.count, let m = routeMetrics[slot], m.method == exchange.method {
                m.counter.increment()
                m.latency.record(nanoseconds: nanos)
                m.traffic.record(nanoseconds: nanos, status: exchange.status)
                if exchange.status >= 500 { recordError(exchange) }
                if accessLog != nil { logAccess(exchange) }
                return
            }
        }
        let key = GatewayMetrics.RequestKey(
            service: exchange.service, route: exchange.route.routeTemplate, method: exchange.method, statusClass: statusClass
        )
        let counter: CoreMetrics.Counter
        if let existing = requestCounters[key] {
            counter = existing
        } else {
            counter = gateway.metrics.requests(key)
            requestCounters[key] = counter
        }
        counter.increment()
        let latency: LatencyHistograms.Shard
        if let shard = latencyShards[exchange.service] {
            latency = shard
        } else {
            latency = gateway.metrics.upstreamLatency.makeShard(service: exchange.service)
            latencyShards[exchange.service] = latency
        }
        latency.record(nanoseconds: nanos)
        let trafficKey = exchange.service + " " + exchange.method + " " + exchange.route.routeTemplate
        let traffic: TrafficStats.Slot
        if let existing = trafficSlots[trafficKey] {
            traffic = existing
        } else {
            traffic = gateway.traffic.makeSlot(service: exchange.service, method: exchange.method, route: exchange.route.routeTemplate)
            trafficSlots[trafficKey] = traffic
        }
        traffic.record(nanoseconds: nanos, status: exchange.status)
        if exchange.status >= 500 { recordError(exchange) }
        if slot >= 0 {
            if routeMetrics.count <= slot { routeMetrics.append(contentsOf: repeatElement(nil, count: slot + 1 - routeMetrics.count)) }
            routeMetrics[slot] = LoopContext.RouteMetrics(method: exchange.method, counter: counter, latency: latency, traffic: traffic)
        }
        if accessLog != nil { logAccess(exchange) }
    }

    /// A 5xx for `/_tapper/traffic`'s recent errors (rare, so a lock is fine here).
    private func recordError(_ exchange: Exchange) {
        gateway.traffic.recordError(
            .init(
                at: .now, method: exchange.method, path: exchange.path, status: exchange.status, service: exchange.service,
                instance: exchange.target?.instanceID, requestID: exchange.requestID))
    }

    private func logAccess(_ exchange: Exchange) {
        guard let log = accessLog else { return }
        let ms = Double((NIODeadline.now() - exchange.started).nanoseconds) / 1e6
        log.append(
            "method=\(exchange.method) path=\(AccessLogBuffer.value(exchange.path)) status=\(exchange.status) service=\(exchange.service) route=\(AccessLogBuffer.value(exchange.route.routeTemplate)) instance=\(exchange.target?.instanceID ?? "-") duration_ms=\(String(format: ms)) bytes=\(exchange.responseBytes)\(exchange.status == 101 ? " tunnel=1 bytes_in=\(exchange.tunnelBytesIn)" : "") outcome=\(exchange.outcome) request_id=\(exchange.requestID)"
        )
    }

    /// A request the gateway answered itself.
    func localResponse(method: String, path: String, status: Int, requestID: String, started: NIODeadline) {
        gateway.totalRequests.wrappingIncrement(ordering: .relaxed)
        if status >= 500 {
            gateway.traffic.recordError(.init(at: .now, method: method, path: path, status: status, service: "-", instance: nil, requestID: requestID))
        }
        if let log = accessLog {
            let ms = Double((NIODeadline.now() - started).nanoseconds) / 1e6
            log.append("method=\(method) path=\(AccessLogBuffer.value(path)) status=\(status) service=- duration_ms=\(String(format: ms)) request_id=\(requestID)")
        }
    }
}
