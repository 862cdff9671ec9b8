/// The registry's catalog with TTL bookkeeping, on an injected clock.
///
/// A pure value type: no sockets, no timers, no wall clock. ``register(service:instanceID:registration:)``,
/// ``heartbeat(service:instanceID:)``, ``deregister(service:instanceID:)`` and ``expire()``
/// return what changed; the owner (the memory backend, an actor) decides what to do with it.
/// Every change to the catalog increments ``index``; heartbeats do not, so watchers only wake
/// for real changes.
///
/// Route ownership is enforced here: two services may not claim the same method and template
/// shape, and a conflicting registration is refused naming the owner.
public struct RegistryState<C: Clock>: Sendable where C.Duration == Duration {
    struct Entry: Sendable {
        var record: InstanceRecord
        var lastHeartbeat: C.Instant
        var deadline: C.Instant
        /// Ownership keys this instance holds, so removal can release them.
        var routeKeys: [RouteKey]
    }

    struct InstanceKey: Hashable, Sendable {
        var service: String
        var instanceID: String
    }

    struct RouteKey: Hashable, Sendable {
        var shape: String
        var method: String  // "*" for any method
    }

    /// The result of a registration.
    public enum RegisterOutcome: Hashable, Sendable {
        case created(InstanceRecord)
        case updated(InstanceRecord)

        public var record: InstanceRecord {
            switch self {
            case .created(let r), .updated(let r): return r
            }
        }
    }

    /// Why a registration was refused.
    public enum RegisterError: Error, Hashable, Sendable {
        case invalid(FieldError)
        /// Another service already owns `method template`.
        case conflict(field: String, route: String, owner: String)
    }

    public let clock: C
    public private(set) var index: UInt64
    var instances: [InstanceKey: Entry] = [:]
    /// route key -> service -> number of its instances declaring it.
    var owners: [RouteKey: [String: Int]] = [:]
    var methodsByShape: [String: Set<String>] = [:]

    public init(clock: C, startIndex: UInt64 = 0) {
        self.clock = clock
        self.index = startIndex
    }

    public var count: Int { instances.count }

    /// Registers or updates an instance. An identical re-registration only refreshes the TTL
    /// and does not bump the index.
    public mutating func register(service: String, instanceID: String, registration input: ServiceRegistration) throws(RegisterError) -> RegisterOutcome {
        var registration = input
        do {
            try Names.validateServiceName(service, field: "service")
            try Names.validateInstanceID(instanceID, field: "instance_id")
            try registration.validate()
        } catch {
            throw .invalid(error)
        }
        let keys = try routeKeys(for: registration, service: service)
        let now = clock.now
        let deadline = now.advanced(by: .seconds(registration.ttlSeconds))
        let key = InstanceKey(service: service, instanceID: instanceID)
        if var existing = instances[key] {
            existing.lastHeartbeat = now
            existing.deadline = deadline
            if existing.record.registration == registration {
                instances[key] = existing
                return .updated(existing.record)
            }
            release(existing.routeKeys, service: service)
            claim(keys, service: service)
            index += 1
            existing.record.registration = registration
            existing.record.modifyIndex = index
            existing.routeKeys = keys
            instances[key] = existing
            return .updated(existing.record)
        }
        index += 1
        let record = InstanceRecord(service: service, instanceID: instanceID, registration: registration, createIndex: index, modifyIndex: index)
        claim(keys, service: service)
        instances[key] = Entry(record: record, lastHeartbeat: now, deadline: deadline, routeKeys: keys)
        return .created(record)
    }

    /// Restores a record (from a snapshot on disk) with a fresh TTL, keeping its indices.
    public mutating func restore(_ record: InstanceRecord) {
        guard let keys = try? routeKeys(for: record.registration, service: record.service) else { return }
        let now = clock.now
        claim(keys, service: record.service)
        let key = InstanceKey(service: record.service, instanceID: record.instanceID)
        instances[key] = Entry(
            record: record,
            lastHeartbeat: now,
            deadline: now.advanced(by: .seconds(record.registration.ttlSeconds)),
            routeKeys: keys
        )
        index = max(index, record.modifyIndex)
    }

    /// Refreshes an instance's TTL. Returns false when the instance is unknown (the client
    /// should re-register).
    public mutating func heartbeat(service: String, instanceID: String) -> Bool {
        let key = InstanceKey(service: service, instanceID: instanceID)
        guard var entry = instances[key] else { return false }
        let now = clock.now
        entry.lastHeartbeat = now
        entry.deadline = now.advanced(by: .seconds(entry.record.registration.ttlSeconds))
        instances[key] = entry
        return true
    }

    /// Removes an instance. Returns the removed record, or nil when it was unknown.
    public mutating func deregister(service: String, instanceID: String) -> InstanceRecord? {
        let key = InstanceKey(service: service, instanceID: instanceID)
        guard let entry = instances.removeValue(forKey: key) else { return nil }
        release(entry.routeKeys, service: service)
        index += 1
        return entry.record
    }

    /// Removes every instance whose TTL has passed. Returns the expired records.
    public mutating func expire() -> [InstanceRecord] {
        let now = clock.now
        let expired = instances.filter { $0.value.deadline <= now }
        guard !expired.isEmpty else { return [] }
        for (key, entry) in expired {
            instances.removeValue(forKey: key)
            release(entry.routeKeys, service: key.service)
        }
        index += 1
        return expired.values.map(\.record).sorted { ($0.service, $0.instanceID) < ($1.service, $1.instanceID) }
    }

    /// The earliest TTL deadline, so a sweeper can sleep until then.
    public var nextDeadline: C.Instant? { instances.values.map(\.deadline).min() }

    /// The catalog now, with heartbeat ages and time to expiry filled in.
    public func snapshot() -> CatalogSnapshot {
        let now = clock.now
        let records = instances.values.map { entry -> InstanceRecord in
            var r = entry.record
            r.heartbeatAgeSeconds = entry.lastHeartbeat.duration(to: now).inSeconds
            r.expiresInSeconds = max(0, now.duration(to: entry.deadline).inSeconds)
            return r
        }
        return CatalogSnapshot(index: index, instances: records)
    }

    /// One instance, if registered.
    public func record(service: String, instanceID: String) -> InstanceRecord? {
        instances[InstanceKey(service: service, instanceID: instanceID)]?.record
    }

    // MARK: route ownership

    func routeKeys(for registration: ServiceRegistration, service: String) throws(RegisterError) -> [RouteKey] {
        var keys: [RouteKey] = []
        for (i, route) in registration.routes.enumerated() {
            let template: RouteTemplate
            do {
                template = try RouteTemplate(parsing: registration.prefix + route.path)
            } catch {
                throw .invalid(error.nested(under: "routes[\(i)].path"))
            }
            let shape = template.shape
            let wanted = route.methods.isEmpty ? ["*"] : route.methods
            for m in wanted {
                let clashing = m == "*" ? Array(methodsByShape[shape] ?? []) : [m, "*"]
                for other in clashing {
                    if let owner = owners[RouteKey(shape: shape, method: other)]?.keys.first(where: { $0 != service }) {
                        let label = (other == "*" || m == "*") ? "\(m == "*" ? "ANY" : m) \(template.raw)" : "\(m) \(template.raw)"
                        throw .conflict(field: "routes[\(i)]", route: label, owner: owner)
                    }
                }
                keys.append(RouteKey(shape: shape, method: m))
            }
        }
        return keys
    }

    mutating func claim(_ keys: [RouteKey], service: String) {
        for k in keys {
            owners[k, default: [:]][service, default: 0] += 1
            methodsByShape[k.shape, default: []].insert(k.method)
        }
    }

    mutating func release(_ keys: [RouteKey], service: String) {
        for k in keys {
            guard var byService = owners[k] else { continue }
            let n = (byService[service] ?? 0) - 1
            byService[service] = n > 0 ? n : nil
            if byService.isEmpty {
                owners[k] = nil
                methodsByShape[k.shape]?.remove(k.method)
                if methodsByShape[k.shape]?.isEmpty == true { methodsByShape[k.shape] = nil }
            } else {
                owners[k] = byService
            }
        }
    }
}
