import ServiceLifecycle
import TapperCore

/// Where the registry keeps its catalog: the extension point for storage (memory, Redis, etcd,
/// Consul, or your own).
///
/// A backend stores instances with a TTL, serves whole snapshots with a change index, and pushes
/// a whole new snapshot to every watcher after each change (never deltas: a watcher can always
/// replace what it had). It is a `Service` so its sweepers and watch loops run under the
/// application's `ServiceGroup`; ``run()`` must return on graceful shutdown.
///
/// Conformances must be safe to call concurrently from many requests.
public protocol RegistryBackend: Service {
    /// A human-readable name for logs and errors, without secrets (e.g. `memory`, `redis://127.0.0.1:6379`).
    var displayName: String { get }

    /// Registers or updates an instance; it expires unless refreshed within `ttl_seconds`.
    /// - Throws: ``RegistryBackendError`` (`conflict`, `invalid`, `unavailable`).
    func register(service: String, instanceID: String, registration: ServiceRegistration) async throws -> RegisterResult

    /// Refreshes the instance's TTL. Returns false when it is unknown (expired or never registered).
    func heartbeat(service: String, instanceID: String) async throws -> Bool

    /// Removes an instance. Returns false when it was unknown.
    func deregister(service: String, instanceID: String) async throws -> Bool

    /// The whole catalog now.
    func snapshot() async throws -> CatalogSnapshot

    /// Whole snapshots as the catalog changes: each iteration returns the newest snapshot whose
    /// index is past the previous one (the first returns the current catalog at once). Slow
    /// consumers skip intermediate states, never a final one. Iteration ends on shutdown.
    func watch() -> CatalogWatch
}

/// The outcome of ``RegistryBackend/register(service:instanceID:registration:)``.
public struct RegisterResult: Sendable, Hashable {
    public var record: InstanceRecord
    public var created: Bool

    public init(record: InstanceRecord, created: Bool) {
        self.record = record
        self.created = created
    }
}

/// Errors a backend reports; the HTTP layer maps them to statuses.
public struct RegistryBackendError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// 400: a field is invalid.
        case invalid(FieldError)
        /// 409: another service owns the route.
        case conflict(field: String, route: String, owner: String)
        /// 503: the store cannot be reached.
        case unavailable(store: String, reason: String)
    }

    public var kind: Kind

    public init(_ kind: Kind) { self.kind = kind }

    public static func invalid(_ e: FieldError) -> Self { .init(.invalid(e)) }
    public static func conflict(field: String, route: String, owner: String) -> Self { .init(.conflict(field: field, route: route, owner: owner)) }
    public static func unavailable(store: String, reason: String) -> Self { .init(.unavailable(store: store, reason: reason)) }

    public var description: String {
        switch kind {
        case .invalid(let e): return e.description
        case .conflict(_, let route, let owner): return "route \(route) is already owned by service '\(owner)'"
        case .unavailable(let store, let reason): return "the registry store \(store) is unavailable: \(reason)"
        }
    }
}
