import TapperCore

/// Everything the data path needs from one catalog: the compiled route table and, for each of
/// its entries, the upstream targets that may serve it. Immutable; replaced whole on change.
public struct RoutingSnapshot: Sendable {
    public let catalog: CatalogSnapshot
    public let table: RouteTable
    /// Targets per route-table entry, in entry order.
    public let targets: [[UpstreamTarget]]
    /// ``targets`` as balancer input, per entry: built once here so that picking an instance
    /// allocates nothing while every instance is routable.
    public let balancerCandidates: [[BalancerCandidate]]
    /// Every target by `service/instance`.
    public let instances: [String: UpstreamTarget]
    /// Per-service balancer overrides from registrations.
    public let balancerOverrides: [String: String]
    /// Per entry: how its targets' versions share the traffic (nil: one version, or no
    /// `traffic_weight` among them, so the balancer sees every target).
    public let versionSplits: [VersionSplit?]
    /// Per entry with a split: its targets and balancer input for each share, in share order,
    /// so a request narrowed to one version allocates nothing while every target is routable.
    let versionTargets: [[VersionTargets]]
    /// `traffic_weight` per version, per service (to split a health-filtered candidate set).
    public let trafficWeights: [String: [String: Double]]
    /// Per entry: the service's and the route's own rate limiters (nil: none).
    let entryLimiters: [EntryLimiters?]
    /// The settings that change live (a reloaded `--config`): the gateway-wide limit and key.
    let policy: TrafficPolicy

    struct VersionTargets {
        var targets: [UpstreamTarget]
        var balancerCandidates: [BalancerCandidate]
    }

    public init(catalog: CatalogSnapshot) {
        self.init(catalog: catalog, limiters: RateLimiterCache())
    }

    /// - Parameters:
    ///   - limiters: where the services' and routes' rate limiters live between snapshots.
    ///   - upstreamProtocol: for instances whose registration names no `protocol`.
    init(catalog: CatalogSnapshot, limiters: RateLimiterCache, policy: TrafficPolicy = TrafficPolicy(), upstreamProtocol: UpstreamProtocol = .http1) {
        self.catalog = catalog
        self.policy = policy
        let table = RouteTable(snapshot: catalog)
        var instances: [String: UpstreamTarget] = [:]
        var overrides: [String: String] = [:]
        for record in catalog.allInstances {
            guard let url = record.registration.serviceURL else { continue }
            let t = UpstreamTarget(
                service: record.service, instanceID: record.instanceID, url: url, weight: record.registration.weight,
                healthEndpoint: record.registration.healthEndpoint, version: record.registration.version,
                upstreamProtocol: record.registration.upstreamProtocol ?? upstreamProtocol
            )
            instances[t.key] = t
            if let lb = record.registration.loadBalancer { overrides[record.service] = lb }
        }
        self.table = table
        self.entryLimiters = limiters.limiters(for: table, catalog: catalog)
        self.instances = instances
        self.balancerOverrides = overrides
        let targets = table.entries.map { entry in
            entry.instanceIDs.compactMap { instances[entry.service + "/" + $0] }
        }
        self.targets = targets
        self.balancerCandidates = targets.map { list in list.map { BalancerCandidate(instanceID: $0.instanceID, weight: $0.weight) } }
        var weights: [String: [String: Double]] = [:]
        for service in catalog.services {
            let w = VersionSplit.weights(of: service.instances)
            if !w.isEmpty { weights[service.name] = w }
        }
        self.trafficWeights = weights
        let splits = zip(table.entries, targets).map { entry, list in
            weights[entry.service].flatMap { VersionSplit.compute(versions: list.lazy.map(\.version), weights: $0) }
        }
        self.versionSplits = splits
        self.versionTargets = zip(splits, targets).map { split, list in
            (split?.shares ?? []).map { share in
                let subset = list.filter { $0.version == share.version }
                return VersionTargets(targets: subset, balancerCandidates: subset.map { BalancerCandidate(instanceID: $0.instanceID, weight: $0.weight) })
            }
        }
    }

    public static let empty = RoutingSnapshot(catalog: CatalogSnapshot(index: 0, services: []))
}

/// The gateway settings that change while it serves (a reloaded `--config`), carried by every
/// snapshot so that a request reads them with the routing table it already holds.
struct TrafficPolicy: Sendable {
    /// The gateway-wide rate limit (`--rate-limit`); nil: none.
    var gatewayLimiter: RateLimiter? = nil
    /// What every rate limit counts by (`--rate-limit-key`).
    var rateLimitKey: RateLimiter.Key = .clientIP
}
