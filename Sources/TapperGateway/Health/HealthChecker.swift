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
    /// The shortest pause between two looks for due probes.
    let tick: Duration
    /// The longest: how late at most a newly registered instance gets its first probe (also
    /// bounded by the probe interval).
    static let longestPause: Duration = .seconds(1)

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
                    // Sleep until the next probe is due, not a fixed tick: an idle gateway
                    // wakes about once a second instead of twenty times.
                    let longest = min(Self.longestPause, monitor.configuration.active.interval)
                    var pause = longest
                    if let next = monitor.nextProbeDue() { pause = min(max(next - ContinuousClock.now, tick), longest) }
                    try? await Task.sleep(for: pause)
                }
                group.cancelAll()
            }
        }
    }

    func probe(_ target: UpstreamTarget) async {
        let timeout = monitor.configuration.active.timeout
        if target.upstreamProtocol == .h2c {
            // Over h2c too: a gRPC server answers nothing else.
            let ok = await H2Probe.check(
                host: target.url.connectHost, port: target.url.port, authority: target.url.authority, path: target.healthEndpoint, timeout: timeout)
            return finished(target, ok: ok)
        }
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
        finished(target, ok: ok)
    }

    private func finished(_ target: UpstreamTarget, ok: Bool) {
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
