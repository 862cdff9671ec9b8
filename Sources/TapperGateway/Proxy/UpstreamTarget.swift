import TapperCore

/// One instance the gateway can send requests to, as resolved from the catalog.
public struct UpstreamTarget: Sendable, Hashable {
    public let service: String
    public let instanceID: String
    public let url: ServiceURL
    public var weight: Int
    public var healthEndpoint: String
    public var version: String
    /// `service/instance`, unique across the catalog. Stored, because passive health looks
    /// instances up by it on every request.
    public let key: String
    /// `host:port` of ``url``: the upstream connection pool's key.
    public let address: String

    public init(service: String, instanceID: String, url: ServiceURL, weight: Int, healthEndpoint: String, version: String) {
        self.service = service
        self.instanceID = instanceID
        self.url = url
        self.weight = weight
        self.healthEndpoint = healthEndpoint
        self.version = version
        self.key = service + "/" + instanceID
        self.address = url.authority
    }
}
