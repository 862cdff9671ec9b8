import TapperCore

/// One instance the gateway can send requests to, as resolved from the catalog.
public struct UpstreamTarget: Sendable, Hashable {
    public var service: String
    public var instanceID: String
    public var url: ServiceURL
    public var weight: Int
    public var healthEndpoint: String
    public var version: String

    /// `service/instance`, unique across the catalog.
    public var key: String { service + "/" + instanceID }
}
