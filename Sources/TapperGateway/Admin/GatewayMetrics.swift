import CoreMetrics
import Prometheus

/// The gateway's metrics, through swift-metrics with a swift-prometheus backend that is private to
/// this gateway (no global bootstrap), exposed at `/_tapper/metrics`.
///
/// Labels use the route template, never the raw path, so cardinality stays bounded by the
/// route table. Metric handles are cached per I/O thread (``LoopContext``), so the data path
/// only increments.
public final class GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let inFlight: CoreMetrics.Gauge
    let openConnections: CoreMetrics.Gauge
    /// Upgraded connections (WebSocket tunnels): open now, opened in all, and bytes each way.
    let openTunnels: CoreMetrics.Gauge
    let tunnelsTotal: CoreMetrics.Counter
    let tunnelBytesFromClients: CoreMetrics.Counter
    let tunnelBytesFromUpstreams: CoreMetrics.Counter
    /// `tapper_upstream_duration_seconds` by service, recorded per I/O thread without a lock.
    let upstreamLatency = LatencyHistograms(name: "tapper_upstream_duration_seconds", bounds: GatewayMetrics.latencyBuckets)
    /// The access log's writer, whose drops are `tapper_access_log_dropped_total` (shared by every
    /// gateway in the process that logs to it, so the count is the process's).
    let accessLog: AccessLogWriter

    static let latencyBuckets: [Duration] = [
        .microseconds(250), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// - Parameter accessLog: the writer whose dropped lines are reported.
    public init(accessLog: AccessLogWriter = .standardOutput) {
        self.accessLog = accessLog
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        self.registry = registry
        self.factory = factory
        inFlight = CoreMetrics.Gauge(label: "tapper_requests_in_flight", dimensions: [], factory: factory)
        openConnections = CoreMetrics.Gauge(label: "tapper_open_connections", dimensions: [], factory: factory)
        openTunnels = CoreMetrics.Gauge(label: "tapper_tunnels_open", dimensions: [], factory: factory)
        tunnelsTotal = CoreMetrics.Counter(label: "tapper_tunnels_total", dimensions: [], factory: factory)
        tunnelBytesFromClients = CoreMetrics.Counter(label: "tapper_tunnel_bytes_total", dimensions: [("direction", "client_to_upstream")], factory: factory)
        tunnelBytesFromUpstreams = CoreMetrics.Counter(label: "tapper_tunnel_bytes_total", dimensions: [("direction", "upstream_to_client")], factory: factory)
    }

    struct RequestKey: Hashable {
        var service: String
        var route: String
        var method: String
        var statusClass: Int
    }

    func requests(_ key: RequestKey) -> CoreMetrics.Counter {
        CoreMetrics.Counter(
            label: "tapper_requests_total",
            dimensions: [("service", key.service), ("route", key.route), ("method", key.method), ("status", "\(key.statusClass)xx")],
            factory: factory
        )
    }

    /// The Prometheus text exposition.
    public func text() -> String {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        var text = String(decoding: buffer, as: UTF8.self)
        upstreamLatency.emit(into: &text)
        text += "# HELP tapper_access_log_dropped_total Access-log lines dropped because the log's reader fell behind.\n"
        text += "# TYPE tapper_access_log_dropped_total counter\n"
        text += "tapper_access_log_dropped_total \(accessLog.droppedLines)\n"
        return text
    }
}
