/// A registered instance as the registry stores and serves it: the registration plus its
/// identity and the change indices at which it was created and last modified.
public struct InstanceRecord: Hashable, Sendable, Codable {
    public var service: String
    public var instanceID: String
    public var registration: ServiceRegistration
    /// The change index at which this instance was first registered.
    public var createIndex: UInt64
    /// The change index of its last modification.
    public var modifyIndex: UInt64
    /// Seconds since the last heartbeat or registration, when the backend knows it.
    public var heartbeatAgeSeconds: Double?
    /// Seconds until the instance expires without a heartbeat, when the backend knows it.
    public var expiresInSeconds: Double?

    public init(
        service: String,
        instanceID: String,
        registration: ServiceRegistration,
        createIndex: UInt64,
        modifyIndex: UInt64,
        heartbeatAgeSeconds: Double? = nil,
        expiresInSeconds: Double? = nil
    ) {
        self.service = service
        self.instanceID = instanceID
        self.registration = registration
        self.createIndex = createIndex
        self.modifyIndex = modifyIndex
        self.heartbeatAgeSeconds = heartbeatAgeSeconds
        self.expiresInSeconds = expiresInSeconds
    }

    enum CodingKeys: String, CodingKey {
        case service
        case instanceID = "instance_id"
        case createIndex = "create_index"
        case modifyIndex = "index"
        case heartbeatAgeSeconds = "last_heartbeat_age_seconds"
        case expiresInSeconds = "expires_in_seconds"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        service = try c.decode(String.self, forKey: .service)
        instanceID = try c.decode(String.self, forKey: .instanceID)
        createIndex = try c.decodeIfPresent(UInt64.self, forKey: .createIndex) ?? 0
        modifyIndex = try c.decodeIfPresent(UInt64.self, forKey: .modifyIndex) ?? 0
        heartbeatAgeSeconds = try c.decodeIfPresent(Double.self, forKey: .heartbeatAgeSeconds)
        expiresInSeconds = try c.decodeIfPresent(Double.self, forKey: .expiresInSeconds)
        registration = try ServiceRegistration(lenientFrom: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(service, forKey: .service)
        try c.encode(instanceID, forKey: .instanceID)
        try c.encode(createIndex, forKey: .createIndex)
        try c.encode(modifyIndex, forKey: .modifyIndex)
        try c.encodeIfPresent(heartbeatAgeSeconds?.roundedToThousandths, forKey: .heartbeatAgeSeconds)
        try c.encodeIfPresent(expiresInSeconds?.roundedToThousandths, forKey: .expiresInSeconds)
        try registration.encode(to: encoder)
    }
}

extension ServiceRegistration {
    /// Decodes the registration fields of a flattened ``InstanceRecord``, ignoring its extra keys.
    init(lenientFrom decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        version = try c.decodeIfPresent(String.self, forKey: .version) ?? "0.0.0"
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        prefix = try c.decodeIfPresent(String.self, forKey: .prefix) ?? ""
        healthEndpoint = try c.decodeIfPresent(String.self, forKey: .healthEndpoint) ?? "/health"
        tags = try c.decodeIfPresent([String].self, forKey: .tags) ?? []
        routes = try c.decodeIfPresent([RouteSpec].self, forKey: .routes) ?? []
        ttlSeconds = try c.decodeIfPresent(Double.self, forKey: .ttlSeconds) ?? Self.defaultTTLSeconds
        weight = try c.decodeIfPresent(Int.self, forKey: .weight) ?? 1
        metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:]
        loadBalancer = try c.decodeIfPresent(String.self, forKey: .loadBalancer)
        trafficWeight = try c.decodeIfPresent(Double.self, forKey: .trafficWeight)
        rateLimit = try c.decodeIfPresent(String.self, forKey: .rateLimit).flatMap { try? RateLimit(parsing: $0) }
        openapiPath = try c.decodeIfPresent(String.self, forKey: .openapiPath)
        upstreamProtocol = try c.decodeIfPresent(String.self, forKey: .upstreamProtocol).flatMap { UpstreamProtocol(rawValue: $0) }
    }
}
