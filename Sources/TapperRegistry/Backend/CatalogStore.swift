import TapperCore

/// The primitive operations of a shared store (Redis, etcd, Consul, …) that ``StoreBackend``
/// turns into a full ``RegistryBackend``: the store keeps instances and their TTLs, the backend
/// adds conflict checks, a cached snapshot for reads while the store is down, and watch fan-out.
///
/// Implementations do I/O only; every decision (route ownership, staleness, retries) is made by
/// ``StoreBackend``. Errors thrown by these methods mean "the store cannot be reached" and are
/// reported to clients as ``RegistryBackendError/unavailable(store:reason:)``.
public protocol CatalogStore: Sendable {
    /// The store's name for logs and errors, without secrets.
    var displayName: String { get }

    /// Reads the whole catalog and the store's write guard in one consistent read.
    func load() async throws -> StoreRead

    /// Stores `record` with a TTL of `record.registration.ttlSeconds`, but only when the write
    /// guard is still `guard` (nobody wrote since the ``load()`` that produced it).
    /// - Parameters:
    ///   - record: the record to store; `createIndex` is 0 for a new instance.
    ///   - guard: ``StoreRead/guardToken`` of the read the conflict check was made on.
    /// - Returns: the stored record with the store's indices, or nil when the guard moved (the
    ///   caller re-reads and retries).
    func write(_ record: InstanceRecord, guard: UInt64) async throws -> InstanceRecord?

    /// Refreshes an instance's TTL. Returns false when the instance is unknown.
    func refresh(service: String, instanceID: String) async throws -> Bool

    /// Removes an instance. Returns false when it was unknown.
    func remove(service: String, instanceID: String) async throws -> Bool

    /// Follows the store's change notifications (pub/sub, watch stream, blocking query) and calls
    /// `changed` after each one, reconnecting by itself; returns when the task is cancelled.
    func notifications(_ changed: @escaping @Sendable () -> Void) async
}

/// One consistent read of a ``CatalogStore``.
public struct StoreRead: Sendable {
    /// The catalog, its index being the store's change index.
    public var snapshot: CatalogSnapshot
    /// What a conditional ``CatalogStore/write(_:guard:)`` compares against.
    public var guardToken: UInt64

    public init(snapshot: CatalogSnapshot, guardToken: UInt64) {
        self.snapshot = snapshot
        self.guardToken = guardToken
    }
}
