import Synchronization
import TapperCore

/// The rate limiters a route-table entry's requests draw on besides the gateway-wide one:
/// its service's (`rate_limit` on the registration) and its own (`rate_limit` on the route).
struct EntryLimiters: Sendable {
    var service: RateLimiter?
    var route: RateLimiter?
}

/// Keeps the services' and routes' rate limiters across routing snapshots, so a catalog
/// change that leaves a limit alone keeps its buckets (a client's budget is not reset by an
/// unrelated registration); a limit that changed or went away loses them.
final class RateLimiterCache: Sendable {
    private let limiters = Mutex<[String: RateLimiter]>([:])
    /// Shares every limit with other gateways (nil: local).
    let sharing: LimitSharing?

    init(sharing: LimitSharing? = nil) {
        self.sharing = sharing
    }

    /// The limiters of each entry of `table` (nil where an entry has none).
    func limiters(for table: RouteTable, catalog: CatalogSnapshot) -> [EntryLimiters?] {
        var serviceLimits: [String: RateLimit] = [:]
        for service in catalog.services {
            // Instances that disagree: the strictest limit wins (as `public` fails closed).
            let limit = service.instances.reduce(nil as RateLimit?) { RateLimit.stricter($0, $1.registration.rateLimit) }
            if let limit { serviceLimits[service.name] = limit }
        }
        let anyRouteLimit = table.entries.contains { $0.rateLimit != nil }
        if serviceLimits.isEmpty && !anyRouteLimit {
            limiters.withLock { $0.removeAll() }
            return Array(repeating: nil, count: table.entries.count)
        }
        return limiters.withLock { cache in
            var kept: [String: RateLimiter] = [:]
            func limiter(_ id: String, _ limit: RateLimit) -> RateLimiter {
                let key = id + " " + limit.description
                let l = kept[key] ?? cache[key] ?? RateLimiter(limit: limit, scope: id, sharing: sharing)
                kept[key] = l
                return l
            }
            let result = table.entries.map { entry -> EntryLimiters? in
                let service = serviceLimits[entry.service].map { limiter("service \(entry.service)", $0) }
                let route = entry.rateLimit.map { limiter("route \(entry.service) \(entry.methods.first ?? "*") \(entry.template.shape)", $0) }
                return service == nil && route == nil ? nil : EntryLimiters(service: service, route: route)
            }
            cache = kept
            return result
        }
    }
}
