/// Which service, route and instances a request would reach, and why: the answer of
/// `tapper route test METHOD PATH` and of the gateway's `/_tapper/explain?method=&path=`, built
/// by one function so the two never disagree. Its JSON is `route test --json`'s.
public struct RouteReport: Hashable, Sendable, Codable {
    public struct Candidate: Hashable, Sendable, Codable {
        public var service: String
        public var template: String
        public var method: String
        public var reason: String?
    }

    public struct Instance: Hashable, Sendable, Codable {
        public var id: String
        public var url: String
        public var state: String
    }

    /// What `--send` got back (the CLI fills it in; the gateway never sends).
    public struct Sent: Hashable, Sendable, Codable {
        public var status: Int
        public var milliseconds: Double
        public var instance: String?
        public var body: String

        public init(status: Int, milliseconds: Double, instance: String?, body: String) {
            self.status = status
            self.milliseconds = milliseconds
            self.instance = instance
            self.body = body
        }
    }

    public var method: String
    public var path: String
    /// `matched`, `method_not_allowed` or `not_found`.
    public var result: String
    public var service: String?
    public var version: String?
    public var template: String?
    /// Whether the route is registered as public (served without credentials under `--auth`).
    public var `public`: Bool?
    /// Whether the route is registered as a WebSocket endpoint (the gateway tunnels its upgrade).
    public var websocket: Bool?
    public var parameters: [String: String]
    public var instances: [Instance]
    /// How the routable instances' versions share the traffic (absent: by instance count).
    public var traffic: [VersionSplit.Share]?
    public var candidates: [Candidate]
    public var allowed: [String]
    public var nearby: [String]
    public var sent: Sent?

    /// Whether a route matched (method and path).
    public var matched: Bool { result == "matched" }

    /// The instances that would get traffic: healthy per the gateway, or merely registered when
    /// no gateway was asked.
    public var routableInstances: [Instance] { instances.filter { $0.state == "healthy" || $0.state == "registered" } }

    /// Resolves `method path` against `table` (built from `catalog`).
    /// - Parameters:
    ///   - path: the request path, optionally with a query (ignored for routing).
    ///   - states: each instance's state by service and instance id, as the gateway sees it;
    ///     nil when no gateway answered (instances are then just "registered").
    public init(method rawMethod: String, path: String, catalog: CatalogSnapshot, table: RouteTable, states: [String: [String: String]]?) {
        let method = rawMethod.uppercased()
        let pathOnly = RequestTarget.path(of: path)
        self.method = method
        self.path = path
        result = "not_found"
        parameters = [:]
        instances = []
        candidates = []
        allowed = []
        nearby = []
        switch table.resolve(method: method, path: pathOnly) {
        case .matched(let m):
            result = "matched"
            service = m.entry.service
            template = m.entry.template.raw
            `public` = m.entry.isPublic
            websocket = m.entry.isWebSocket
            parameters = Dictionary(m.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
            let records = catalog.service(named: m.entry.service)?.instances.filter { m.entry.instanceIDs.contains($0.instanceID) } ?? []
            version = Array(Set(records.map(\.registration.version))).sorted().joined(separator: ",")
            let known = states?[m.entry.service] ?? [:]
            instances = records.map { Instance(id: $0.instanceID, url: $0.registration.url, state: known[$0.instanceID] ?? (states == nil ? "registered" : "unknown")) }
            let routableIDs = Set(routableInstances.map(\.id))
            let weights = VersionSplit.weights(of: catalog.service(named: m.entry.service)?.instances ?? [])
            traffic = VersionSplit.compute(versions: records.filter { routableIDs.contains($0.instanceID) }.map(\.registration.version), weights: weights)?.shares
            let explanation = table.explain(path: pathOnly)
            candidates = explanation.candidates.enumerated().map { i, e in
                Candidate(service: e.service, template: e.template.raw, method: e.methods.first ?? "*", reason: i == 0 ? nil : explanation.reasons[i - 1])
            }
        case .methodNotAllowed(let allowed):
            result = "method_not_allowed"
            self.allowed = allowed
            candidates = table.explain(path: pathOnly).candidates.map { Candidate(service: $0.service, template: $0.template.raw, method: $0.methods.first ?? "*") }
        case .notFound:
            nearby = table.nearby(path: pathOnly).map { "\($0.methods.first ?? "*") \($0.template.raw) (\($0.service))" }
        }
    }
}
