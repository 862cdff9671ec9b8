import Foundation
import NIOHTTP1
import TapperCore

/// The gateway's own endpoints: `/health`, `/_tapper/routes`, `/_tapper/status`,
/// `/_tapper/metrics`, `/_tapper/traffic`, `/_tapper/explain`, `/_tapper/dashboard` and
/// `/_tapper/openapi.json` (``AdminOpenAPI``, which describes them all).
struct AdminResponder {
    let gateway: Gateway

    /// What an admin endpoint answers: the same response type as the gateway's errors.
    typealias Reply = ClientOutput.Response

    func respond(method: HTTPMethod, path: Substring, query: Substring) -> Reply {
        guard method == .GET || method == .HEAD else {
            return Reply(.adminReadOnly)
        }
        switch path {
        case "/health": return health()
        case "/_tapper/routes": return json(routes())
        case "/_tapper/status": return json(status())
        case "/_tapper/metrics":
            return Reply(status: .ok, body: gateway.metricsText(), contentType: "text/plain; version=0.0.4")
        case "/_tapper/traffic": return json(traffic())
        case "/_tapper/explain": return explain(query: query)
        case "/_tapper/dashboard":
            return Reply(status: .ok, body: DashboardPage.html, contentType: "text/html; charset=utf-8", headers: [.init(name: "Cache-Control", value: "no-cache")])
        case "/_tapper/openapi.json":
            return Reply(status: .ok, body: AdminOpenAPI.document(adminTokenConfigured: gateway.configuration.adminToken() != nil))
        default:
            return Reply(.noAdminEndpoint)
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) -> Reply {
        let data = (try? Self.encoder.encode(value)) ?? Data("{}".utf8)
        return Reply(status: status, body: String(decoding: data, as: UTF8.self))
    }

    /// The instances of `service` the data path may send requests to now.
    func routableTargets(of service: CatalogSnapshot.Service, in snapshot: RoutingSnapshot) -> [UpstreamTarget] {
        gateway.health.routable(service.instances.compactMap { snapshot.instances[service.name + "/" + $0.instanceID] })
    }

    // MARK: /health

    struct HealthBody: Encodable {
        struct ServiceHealth: Encodable {
            var status: String
            var instances: Int
            var healthy: Int
        }
        var status: String
        var services: [String: ServiceHealth]
        var registry: String
    }

    /// The original Tapper's shape: `{"status": "healthy", "services": {...}}`. The gateway is
    /// "healthy" when every service has a healthy instance, "degraded" otherwise; it answers 200
    /// either way because the gateway itself is serving.
    func health() -> Reply {
        let snapshot = gateway.state.snapshot
        var services: [String: HealthBody.ServiceHealth] = [:]
        for s in snapshot.catalog.services {
            let healthy = routableTargets(of: s, in: snapshot).count
            services[s.name] = .init(status: healthy > 0 ? "healthy" : "unhealthy", instances: s.instances.count, healthy: healthy)
        }
        let allHealthy = services.values.allSatisfy { $0.status == "healthy" }
        let discovery = gateway.state.discoveryStatus
        return json(HealthBody(status: allHealthy ? "healthy" : "degraded", services: services, registry: discovery.reachable ? "reachable" : "unreachable"))
    }

    // MARK: /_tapper/routes

    struct RoutesBody: Encodable {
        struct Route: Encodable {
            var method: String
            var template: String
            var service: String
            var instances: [String]
            var `public`: Bool
        }
        var index: UInt64
        var routes: [Route]
        var conflicts: [String]
    }

    func routes() -> RoutesBody {
        let snapshot = gateway.state.snapshot
        let routes = snapshot.table.entries.map { e in
            RoutesBody.Route(method: e.methods.first ?? "*", template: e.template.raw, service: e.service, instances: e.instanceIDs, public: e.isPublic)
        }.sorted { ($0.template, $0.method) < ($1.template, $1.method) }
        // Routes under the docs paths never reach their service: the gateway answers them first.
        let shadowed = snapshot.table.entries.filter { gateway.docs.endpoint(Substring($0.template.raw)) != nil }.map {
            "\($0.methods.first ?? "*") \($0.template.raw): answered by the gateway's API docs, never routed to \($0.service) (move them with --docs-path/--openapi-path or turn them off with --no-docs)"
        }
        return RoutesBody(
            index: snapshot.table.index, routes: routes,
            conflicts: snapshot.table.conflicts.map { "\($0.method) \($0.template): owned by \($0.owner), refused for \($0.refused)" } + shadowed
        )
    }

    // MARK: /_tapper/status

    func status() -> StatusReport {
        let snapshot = gateway.state.snapshot
        let d = gateway.state.discoveryStatus
        let now = ContinuousClock.now
        let routesPerService = Dictionary(grouping: snapshot.table.entries, by: \.service).mapValues { Set($0.map(\.template.raw)).count }
        let services = snapshot.catalog.services.map { s -> StatusReport.Service in
            let routableTargets = routableTargets(of: s, in: snapshot)
            let routable = Set(routableTargets.map(\.instanceID))
            let instances = s.instances.map { i in
                StatusReport.Instance(
                    id: i.instanceID, url: i.registration.url, version: i.registration.version,
                    state: gateway.instanceState(service: s.name, instanceID: i.instanceID, routable: routable.contains(i.instanceID)),
                    weight: i.registration.weight, heartbeatAgeSeconds: i.heartbeatAgeSeconds, expiresInSeconds: i.expiresInSeconds
                )
            }
            return StatusReport.Service(
                name: s.name, versions: Array(Set(s.instances.map(\.registration.version))).sorted(), healthy: routable.count,
                total: s.instances.count, routes: routesPerService[s.name] ?? 0, instances: instances,
                traffic: snapshot.trafficWeights[s.name].flatMap { VersionSplit.compute(versions: routableTargets.map(\.version), weights: $0)?.shares }
            )
        }
        return StatusReport(
            view: "gateway",
            gateway: .init(
                tableIndex: snapshot.table.index,
                tableAgeSeconds: d.tableBuiltAt.duration(to: now).inSeconds.roundedToThousandths,
                stale: !d.reachable,
                registry: .init(source: d.source, reachable: d.reachable, lastError: d.lastError, lastContactAgeSeconds: d.lastContact.map { $0.duration(to: now).inSeconds.roundedToThousandths }),
                requestsInFlight: gateway.requestsInFlight,
                openConnections: gateway.openConnectionCount,
                uptimeSeconds: gateway.startedAt.duration(to: now).inSeconds.roundedToThousandths,
                rateLimitStore: gateway.state.limitSharing.map {
                    .init(store: $0.store.displayName, failure: $0.failure.rawValue, reachable: !$0.isDown, syncs: $0.syncCount, lastError: $0.lastError)
                },
                tracing: gateway.configuration.tracing.map { exporter in
                    let c = exporter.counters
                    return .init(
                        endpoint: exporter.settings.tracesURL, sampleRate: exporter.settings.sampleRate, exported: c.exported, dropped: c.dropped, failed: c.failed
                    )
                },
                tls: gateway.tlsStatus,
                http2: gateway.h2.status(enabled: gateway.configuration.http2, maxConcurrentStreams: gateway.configuration.http2MaxConcurrentStreams)
            ),
            services: services
        )
    }
}

extension Gateway {
    /// An instance's state as `/_tapper/status` reports it.
    func instanceState(service: String, instanceID: String, routable: Bool) -> String {
        if let described = (health as? any DescribingHealthView)?.describe(service: service, instanceID: instanceID) { return described }
        return routable ? "healthy" : "unhealthy"
    }

    /// Prometheus text exposition of the gateway's metrics.
    func metricsText() -> String {
        let health = ((outcomes as? any MetricsSource) ?? (self.health as? any MetricsSource))?.prometheusText() ?? ""
        return metrics.text() + health
    }
}

/// A health view that can name an instance's state (healthy, unhealthy, ejected, …).
public protocol DescribingHealthView: HealthView {
    func describe(service: String, instanceID: String) -> String?
}

/// Something that contributes Prometheus text to `/_tapper/metrics`.
public protocol MetricsSource: Sendable {
    func prometheusText() -> String
}
