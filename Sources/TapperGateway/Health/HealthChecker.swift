import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import TapperClient
import TapperCore

/// Sends the active health probes (`GET` of each instance's `health_endpoint`) as a `Service`,
/// and keeps the ``HealthMonitor`` in step with the catalog.
public struct HealthChecker: Service {
    let monitor: HealthMonitor
    let state: GatewayState
    let logger: Logger
    let http: HTTPClient
    /// How often due probes are looked for.
    let tick: Duration

    public init(monitor: HealthMonitor, state: GatewayState, logger: Logger, http: HTTPClient = TapperHTTPClient.shared, tick: Duration = .milliseconds(50)) {
        self.monitor = monitor
        self.state = state
        self.logger = logger
        self.http = http
        self.tick = tick
    }

    public func run() async throws {
        let monitor = self.monitor
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    for target in monitor.dueProbes() {
                        group.addTask { await self.probe(target) }
                    }
                    try? await Task.sleep(for: tick)
                }
                group.cancelAll()
            }
        }
    }

    func probe(_ target: UpstreamTarget) async {
        let timeout = monitor.configuration.active.timeout
        var request = HTTPClientRequest(url: target.url.description + target.healthEndpoint)
        request.headers.add(name: "User-Agent", value: "tapper-health-check")
        var ok = false
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            ok = (200..<400).contains(Int(response.status.code))
        } catch {
            ok = false
        }
        switch monitor.probeFinished(target.key, success: ok) {
        case .markUnhealthy:
            logger.warning("instance marked unhealthy", metadata: ["service": "\(target.service)", "instance": "\(target.instanceID)", "probe": "\(target.healthEndpoint)"])
        case .markHealthy:
            logger.notice("instance healthy again", metadata: ["service": "\(target.service)", "instance": "\(target.instanceID)"])
        case .none:
            break
        }
    }
}
