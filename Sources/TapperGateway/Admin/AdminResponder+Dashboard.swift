import NIOHTTP1
import TapperCore

/// `/_tapper/traffic` and `/_tapper/explain`, what the dashboard shows besides the status.
extension AdminResponder {
    struct TrafficBody: Encodable {
        struct Route: Encodable {
            var service: String
            var method: String
            var route: String
            var requestsTotal: UInt64
            var errorsTotal: UInt64
            var requestsPerSecond: Double
            var errorsPerSecond: Double
            var meanMs: Double?
            var p50Ms: Double?
            var p99Ms: Double?

            enum CodingKeys: String, CodingKey {
                case service, method, route
                case requestsTotal = "requests_total"
                case errorsTotal = "errors_total"
                case requestsPerSecond = "requests_per_second"
                case errorsPerSecond = "errors_per_second"
                case meanMs = "mean_ms"
                case p50Ms = "p50_ms"
                case p99Ms = "p99_ms"
            }
        }
        struct RecentError: Encodable {
            var ageSeconds: Double
            var method: String
            var path: String
            var status: Int
            var service: String
            var instance: String?
            var requestID: String

            enum CodingKeys: String, CodingKey {
                case method, path, status, service, instance
                case ageSeconds = "age_seconds"
                case requestID = "request_id"
            }
        }
        var windowSeconds: Double
        var routes: [Route]
        var recentErrors: [RecentError]

        enum CodingKeys: String, CodingKey {
            case routes
            case windowSeconds = "window_seconds"
            case recentErrors = "recent_errors"
        }
    }

    /// Per route: totals since start, and rate and latency over the last seconds (since the
    /// previous reading, up to 10 s back; since start on the first one).
    func traffic() -> TrafficBody {
        let now = ContinuousClock.now
        let reading = gateway.traffic.reading(now: now)
        let since = reading.earlier?.at ?? gateway.startedAt
        let seconds = max(0.001, since.duration(to: now).inSeconds)
        let routes = reading.totals.map { key, totals -> TrafficBody.Route in
            let delta = reading.earlier.map { totals.since($0.totals[key] ?? TrafficWindow.Totals()) } ?? totals
            let rates = TrafficWindow.rates(delta, seconds: seconds)
            return TrafficBody.Route(
                service: key.service, method: key.method, route: key.route, requestsTotal: totals.requests, errorsTotal: totals.errors,
                requestsPerSecond: rates.requestsPerSecond, errorsPerSecond: rates.errorsPerSecond,
                meanMs: rates.meanMilliseconds ?? TrafficWindow.rates(totals, seconds: 1).meanMilliseconds,
                p50Ms: rates.p50Milliseconds ?? TrafficWindow.percentile(0.5, totals.buckets), p99Ms: rates.p99Milliseconds ?? TrafficWindow.percentile(0.99, totals.buckets)
            )
        }.sorted { ($0.service, $0.route, $0.method) < ($1.service, $1.route, $1.method) }
        let errors = gateway.traffic.recentErrors.map { e in
            TrafficBody.RecentError(
                ageSeconds: e.at.duration(to: now).inSeconds.roundedToThousandths, method: e.method, path: e.path, status: e.status, service: e.service,
                instance: e.instance, requestID: e.requestID)
        }
        return TrafficBody(windowSeconds: seconds.roundedToThousandths, routes: routes, recentErrors: errors)
    }

    /// `/_tapper/explain?method=GET&path=/users/1`: ``RouteReport``, as `tapper route test --json`
    /// prints it, with the instances' states as this gateway sees them.
    func explain(query: Substring) -> Reply {
        guard let params = QueryString.parse(query) else {
            return Reply(Self.badQuery("the query has a malformed %-escape or is not UTF-8"))
        }
        guard let method = params["method"], !method.isEmpty else {
            return Reply(Self.badQuery("give method= (e.g. GET) and path= (e.g. /users/1)"))
        }
        guard method.utf8.count <= 32, method.utf8.allSatisfy({ (0x21...0x7E).contains($0) && !"()<>@,;:\\\"/[]?={}".utf8.contains($0) }) else {
            return Reply(Self.badQuery("method '\(Names.printable(method))' is not an HTTP method"))
        }
        guard let path = params["path"], path.utf8.first == UInt8(ascii: "/"), path.unicodeScalars.count <= 8192 else {
            return Reply(Self.badQuery("path= must be a request path starting with '/' (at most 8192 characters)"))
        }
        let snapshot = gateway.state.snapshot
        var states: [String: [String: String]] = [:]
        for s in snapshot.catalog.services {
            let routable = Set(routableTargets(of: s, in: snapshot).map(\.instanceID))
            var byID: [String: String] = [:]
            for i in s.instances {
                byID[i.instanceID] = gateway.instanceState(service: s.name, instanceID: i.instanceID, routable: routable.contains(i.instanceID))
            }
            states[s.name] = byID
        }
        return json(RouteReport(method: method, path: path, catalog: snapshot.catalog, table: snapshot.table, states: states))
    }

    static func badQuery(_ message: String) -> GatewayError {
        GatewayError(status: .badRequest, code: "bad_request", message: message)
    }
}
