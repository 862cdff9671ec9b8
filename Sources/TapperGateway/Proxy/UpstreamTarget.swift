import TapperCore

/// One instance the gateway can send requests to, as resolved from the catalog.
///
/// The fields live in one shared, immutable box: a target is copied several times per request
/// (candidates, the exchange, health and balancer calls), and copying eight strings cost eight
/// retains and releases each time. Copies now share the box; setting a field copies it first.
public struct UpstreamTarget: Sendable, Hashable {
    private final class Storage: Sendable {
        let service: String
        let instanceID: String
        let url: ServiceURL
        let weight: Int
        let healthEndpoint: String
        let version: String
        let key: String
        let address: String
        let upstreamProtocol: UpstreamProtocol
        let poolKey: String
        /// The instance's span attributes, encoded once (tracing).
        let spanInstance: SpanInstance
        /// The same, to be read without a retain (this storage holds it).
        let spanInstanceRef: Unmanaged<SpanInstance>

        init(service: String, instanceID: String, url: ServiceURL, weight: Int, healthEndpoint: String, version: String, upstreamProtocol: UpstreamProtocol) {
            self.service = service
            self.instanceID = instanceID
            self.url = url
            self.weight = weight
            self.healthEndpoint = healthEndpoint
            self.version = version
            self.key = service + "/" + instanceID
            let address = url.authority
            self.address = address
            self.upstreamProtocol = upstreamProtocol
            self.poolKey = upstreamProtocol == .h2c ? "h2c/" + address : address
            let spanInstance = SpanInstance(id: instanceID, url: url.description)
            self.spanInstance = spanInstance
            self.spanInstanceRef = .passUnretained(spanInstance)
        }
    }

    private var storage: Storage

    public var service: String { storage.service }
    public var instanceID: String { storage.instanceID }
    public var url: ServiceURL { storage.url }
    public var weight: Int {
        get { storage.weight }
        set { storage = Storage(service: service, instanceID: instanceID, url: url, weight: newValue, healthEndpoint: healthEndpoint, version: version, upstreamProtocol: upstreamProtocol) }
    }
    public var healthEndpoint: String {
        get { storage.healthEndpoint }
        set { storage = Storage(service: service, instanceID: instanceID, url: url, weight: weight, healthEndpoint: newValue, version: version, upstreamProtocol: upstreamProtocol) }
    }
    public var version: String {
        get { storage.version }
        set { storage = Storage(service: service, instanceID: instanceID, url: url, weight: weight, healthEndpoint: healthEndpoint, version: newValue, upstreamProtocol: upstreamProtocol) }
    }
    /// `service/instance`, unique across the catalog. Stored, because passive health looks
    /// instances up by it on every request.
    public var key: String { storage.key }
    /// `host:port` of ``url``: the upstream connection pool's key.
    public var address: String { storage.address }
    /// How the gateway speaks to the instance (the registration's `protocol`, else the gateway's
    /// `--upstream-protocol`).
    public var upstreamProtocol: UpstreamProtocol { storage.upstreamProtocol }
    /// The upstream pool's key: ``address``, prefixed `h2c/` for HTTP/2 instances (their
    /// connections are multiplexed sessions, never mixed with HTTP/1.1 ones).
    public var poolKey: String { storage.poolKey }
    /// `tapper.instance` and `tapper.instance.url` for the spans of requests it serves.
    public var spanInstance: SpanInstance { storage.spanInstance }
    /// ``spanInstance`` unretained: valid while this target (or a copy of it) is.
    var spanInstanceRef: Unmanaged<SpanInstance> { storage.spanInstanceRef }

    public init(
        service: String, instanceID: String, url: ServiceURL, weight: Int, healthEndpoint: String, version: String,
        upstreamProtocol: UpstreamProtocol = .http1
    ) {
        storage = Storage(
            service: service, instanceID: instanceID, url: url, weight: weight, healthEndpoint: healthEndpoint, version: version,
            upstreamProtocol: upstreamProtocol)
    }

    public static func == (a: UpstreamTarget, b: UpstreamTarget) -> Bool {
        if a.storage === b.storage { return true }
        return a.service == b.service && a.instanceID == b.instanceID && a.url == b.url && a.weight == b.weight
            && a.healthEndpoint == b.healthEndpoint && a.version == b.version && a.upstreamProtocol == b.upstreamProtocol
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(service)
        hasher.combine(instanceID)
        hasher.combine(url)
        hasher.combine(weight)
        hasher.combine(healthEndpoint)
        hasher.combine(version)
        hasher.combine(upstreamProtocol)
    }
}
