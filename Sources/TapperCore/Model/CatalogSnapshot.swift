/// The whole catalog at one change index: what `GET /v1/catalog` returns and what backends
/// push to watchers (always whole snapshots, never deltas).
public struct CatalogSnapshot: Hashable, Sendable, Codable {
    /// One service and its instances, sorted by instance id.
    public struct Service: Hashable, Sendable, Codable {
        public var name: String
        public var instances: [InstanceRecord]

        public init(name: String, instances: [InstanceRecord]) {
            self.name = name
            self.instances = instances
        }
    }

    /// The change index; strictly increases with every change.
    public var index: UInt64
    /// Services sorted by name.
    public var services: [Service]
    /// True when this snapshot was served from a cache because the backend is unreachable.
    public var stale: Bool

    public init(index: UInt64, services: [Service], stale: Bool = false) {
        self.index = index
        self.services = services
        self.stale = stale
    }

    /// Builds a snapshot from instance records in any order.
    public init(index: UInt64, instances: [InstanceRecord], stale: Bool = false) {
        var byService: [String: [InstanceRecord]] = [:]
        for r in instances { byService[r.service, default: []].append(r) }
        self.index = index
        self.services = byService.keys.sorted().map { name in
            Service(name: name, instances: byService[name]!.sorted { $0.instanceID < $1.instanceID })
        }
        self.stale = stale
    }

    /// Every instance, service by service.
    public var allInstances: [InstanceRecord] { services.flatMap(\.instances) }

    public func service(named name: String) -> Service? { services.first { $0.name == name } }

    enum CodingKeys: String, CodingKey { case index, services, stale }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        index = try c.decode(UInt64.self, forKey: .index)
        services = try c.decode([Service].self, forKey: .services)
        stale = try c.decodeIfPresent(Bool.self, forKey: .stale) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(services, forKey: .services)
        if stale { try c.encode(true, forKey: .stale) }
    }
}
