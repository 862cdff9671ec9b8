/// The status of a Tapper deployment as `/_tapper/status` serves it and `tapper status --json`
/// prints it: one stable, documented schema for scripts.
///
/// `view` says whose view it is: `gateway` (health as the gateway routes) or `registry` (the
/// catalog only, when no gateway answered).
public struct StatusReport: Codable, Sendable, Hashable {
    public struct Registry: Codable, Sendable, Hashable {
        public var source: String
        public var reachable: Bool
        public var lastError: String?
        public var lastContactAgeSeconds: Double?

        public init(source: String, reachable: Bool, lastError: String? = nil, lastContactAgeSeconds: Double? = nil) {
            self.source = source
            self.reachable = reachable
            self.lastError = lastError
            self.lastContactAgeSeconds = lastContactAgeSeconds
        }

        enum CodingKeys: String, CodingKey {
            case source, reachable
            case lastError = "last_error"
            case lastContactAgeSeconds = "last_contact_age_seconds"
        }
    }

    /// How the gateway's rate limits are shared (`--rate-limit-store`).
    public struct RateLimitStore: Codable, Sendable, Hashable {
        public var store: String
        /// `open` or `closed`: what limited requests get while the store is down.
        public var failure: String
        public var reachable: Bool
        /// Successful syncs since the start.
        public var syncs: Int
        public var lastError: String?

        public init(store: String, failure: String, reachable: Bool, syncs: Int, lastError: String? = nil) {
            self.store = store
            self.failure = failure
            self.reachable = reachable
            self.syncs = syncs
            self.lastError = lastError
        }

        enum CodingKeys: String, CodingKey {
            case store, failure, reachable, syncs
            case lastError = "last_error"
        }
    }

    public struct Gateway: Codable, Sendable, Hashable {
        public var tableIndex: UInt64
        public var tableAgeSeconds: Double
        public var stale: Bool
        public var registry: Registry
        public var requestsInFlight: Int
        public var openConnections: Int
        public var uptimeSeconds: Double
        /// Set when the rate limits are shared with other gateways.
        public var rateLimitStore: RateLimitStore?
        /// The span exporter's state, when tracing is on (`--otlp-endpoint`).
        public var tracing: Tracing?
        /// The HTTPS listener, when `--tls-port` is set.
        public var tls: TLS?
        /// HTTP/2 towards clients and towards h2c instances.
        public var http2: HTTP2?

        public init(
            tableIndex: UInt64, tableAgeSeconds: Double, stale: Bool, registry: Registry, requestsInFlight: Int, openConnections: Int,
            uptimeSeconds: Double, rateLimitStore: RateLimitStore? = nil, tracing: Tracing? = nil, tls: TLS? = nil, http2: HTTP2? = nil
        ) {
            self.http2 = http2
            self.rateLimitStore = rateLimitStore
            self.tracing = tracing
            self.tls = tls
            self.tableIndex = tableIndex
            self.tableAgeSeconds = tableAgeSeconds
            self.stale = stale
            self.registry = registry
            self.requestsInFlight = requestsInFlight
            self.openConnections = openConnections
            self.uptimeSeconds = uptimeSeconds
        }

        enum CodingKeys: String, CodingKey {
            case tableIndex = "table_index"
            case tableAgeSeconds = "table_age_seconds"
            case stale, registry
            case requestsInFlight = "requests_in_flight"
            case openConnections = "open_connections"
            case uptimeSeconds = "uptime_seconds"
            case rateLimitStore = "rate_limit_store"
            case tracing, tls, http2
        }
    }

    /// HTTP/2 counts since the start (connections and sessions: open now).
    public struct HTTP2: Codable, Sendable, Hashable {
        /// Clients may speak HTTP/2 (not `--no-http2`).
        public var enabled: Bool
        public var maxConcurrentStreams: Int
        /// Client connections speaking HTTP/2 now.
        public var connections: Int
        /// Request streams clients opened.
        public var streams: Int
        /// RST_STREAM frames clients sent.
        public var clientResets: Int
        /// Connections ended with GOAWAY ENHANCE_YOUR_CALM (rapid reset).
        public var rapidResetGoaways: Int
        /// h2c connections to instances open now.
        public var upstreamSessions: Int
        /// Requests sent to h2c instances.
        public var upstreamStreams: Int

        public init(
            enabled: Bool, maxConcurrentStreams: Int, connections: Int, streams: Int, clientResets: Int, rapidResetGoaways: Int,
            upstreamSessions: Int, upstreamStreams: Int
        ) {
            self.enabled = enabled
            self.maxConcurrentStreams = maxConcurrentStreams
            self.connections = connections
            self.streams = streams
            self.clientResets = clientResets
            self.rapidResetGoaways = rapidResetGoaways
            self.upstreamSessions = upstreamSessions
            self.upstreamStreams = upstreamStreams
        }

        enum CodingKeys: String, CodingKey {
            case enabled, connections, streams
            case maxConcurrentStreams = "max_concurrent_streams"
            case clientResets = "client_resets"
            case rapidResetGoaways = "rapid_reset_goaways"
            case upstreamSessions = "upstream_sessions"
            case upstreamStreams = "upstream_streams"
        }
    }

    /// The HTTPS listener's certificates.
    public struct TLS: Codable, Sendable, Hashable {
        public var port: Int
        /// In `--tls-cert` order: the first is the default, the others answer their SNI names.
        public var certificates: [Certificate]
        /// Certificate changes that did not load (the previous ones stayed in use).
        public var reloadFailures: Int

        public init(port: Int, certificates: [Certificate], reloadFailures: Int) {
            self.port = port
            self.certificates = certificates
            self.reloadFailures = reloadFailures
        }

        public struct Certificate: Codable, Sendable, Hashable {
            public var file: String
            public var names: [String]
            /// notAfter, RFC 3339 (UTC).
            public var notAfter: String
            public var expiresInDays: Double

            public init(file: String, names: [String], notAfter: String, expiresInDays: Double) {
                self.file = file
                self.names = names
                self.notAfter = notAfter
                self.expiresInDays = expiresInDays
            }

            enum CodingKeys: String, CodingKey {
                case file, names
                case notAfter = "not_after"
                case expiresInDays = "expires_in_days"
            }
        }

        enum CodingKeys: String, CodingKey {
            case port, certificates
            case reloadFailures = "reload_failures"
        }
    }

    /// Where the gateway's spans go and how many got there.
    public struct Tracing: Codable, Sendable, Hashable {
        /// The URL spans are posted to (`…/v1/traces`).
        public var endpoint: String
        public var sampleRate: Double
        /// Spans the receiver accepted.
        public var exported: Int
        /// Spans dropped because the export queue was full.
        public var dropped: Int
        /// Spans whose export request failed.
        public var failed: Int

        public init(endpoint: String, sampleRate: Double, exported: Int, dropped: Int, failed: Int) {
            self.endpoint = endpoint
            self.sampleRate = sampleRate
            self.exported = exported
            self.dropped = dropped
            self.failed = failed
        }

        enum CodingKeys: String, CodingKey {
            case endpoint
            case sampleRate = "sample_rate"
            case exported, dropped, failed
        }
    }

    public struct Instance: Codable, Sendable, Hashable {
        public var id: String
        public var url: String
        public var version: String
        /// `healthy`, `unhealthy`, `ejected` (gateway view), `registered` or `expiring` (registry view).
        public var state: String
        public var weight: Int
        public var heartbeatAgeSeconds: Double?
        public var expiresInSeconds: Double?

        public init(id: String, url: String, version: String, state: String, weight: Int, heartbeatAgeSeconds: Double?, expiresInSeconds: Double?) {
            self.id = id
            self.url = url
            self.version = version
            self.state = state
            self.weight = weight
            self.heartbeatAgeSeconds = heartbeatAgeSeconds?.roundedToThousandths
            self.expiresInSeconds = expiresInSeconds?.roundedToThousandths
        }

        enum CodingKeys: String, CodingKey {
            case id, url, version, state, weight
            case heartbeatAgeSeconds = "last_heartbeat_age_seconds"
            case expiresInSeconds = "expires_in_seconds"
        }
    }

    public struct Service: Codable, Sendable, Hashable {
        public var name: String
        public var versions: [String]
        public var healthy: Int
        public var total: Int
        public var routes: Int
        public var instances: [Instance]
        /// How the versions share the traffic when a `traffic_weight` splits it (absent: by
        /// instance count); over the routable instances in the gateway's view.
        public var traffic: [VersionSplit.Share]?

        public init(name: String, versions: [String], healthy: Int, total: Int, routes: Int, instances: [Instance], traffic: [VersionSplit.Share]? = nil) {
            self.name = name
            self.versions = versions
            self.healthy = healthy
            self.total = total
            self.routes = routes
            self.instances = instances
            self.traffic = traffic
        }
    }

    public var view: String
    public var gateway: Gateway?
    public var services: [Service]

    public init(view: String, gateway: Gateway?, services: [Service]) {
        self.view = view
        self.gateway = gateway
        self.services = services
    }


    /// The registry's view of a catalog: every instance counts as healthy (the registry does not
    /// probe), `expiring` when less than a third of its TTL is left.
    public init(registryView catalog: CatalogSnapshot) {
        view = "registry"
        gateway = nil
        services = catalog.services.map { s in
            let instances = s.instances.map { i -> Instance in
                let ttl = i.registration.ttlSeconds
                let expiring = (i.expiresInSeconds ?? ttl) < ttl / 3
                return Instance(
                    id: i.instanceID, url: i.registration.url, version: i.registration.version, state: expiring ? "expiring" : "registered",
                    weight: i.registration.weight, heartbeatAgeSeconds: i.heartbeatAgeSeconds, expiresInSeconds: i.expiresInSeconds
                )
            }
            let routes = Set(s.instances.flatMap { i in i.registration.routes.map { i.registration.prefix + $0.path } }).count
            return Service(
                name: s.name, versions: Array(Set(s.instances.map(\.registration.version))).sorted(), healthy: instances.count,
                total: instances.count, routes: routes, instances: instances,
                traffic: VersionSplit.compute(versions: s.instances.map(\.registration.version), weights: VersionSplit.weights(of: s.instances))?.shares
            )
        }
    }

    /// The verdict scripts rely on: 0 healthy, 1 degraded (with the reasons), per `tapper status`.
    public var problems: [String] {
        var out: [String] = []
        for s in services {
            if s.healthy == 0 {
                out.append("service '\(s.name)' has no healthy instance")
            } else {
                for i in s.instances where i.state == "unhealthy" || i.state == "ejected" {
                    out.append("instance '\(i.id)' of '\(s.name)' is \(i.state)")
                }
            }
        }
        if let g = gateway, !g.registry.reachable {
            out.append("the gateway cannot reach its registry (\(g.registry.source)); it routes with a table \(Int(g.tableAgeSeconds)) s old")
        }
        return out
    }
}
