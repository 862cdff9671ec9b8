import Logging
import ServiceLifecycle
import Synchronization
import TapperCore

/// A ``RegistryBackend`` over a shared ``CatalogStore``: what several registries (and gateways
/// reading the store directly) share.
///
/// - Writes re-read the catalog, run the same pure route-ownership check as the memory backend
///   (``RegistryState``) and store the record conditionally on the store's write guard, retrying
///   when another writer got in between; so a 409 holds across registries.
/// - Reads go to the store; when it cannot be reached they serve the last snapshot marked
///   `stale: true`. Writes then fail with ``RegistryBackendError/unavailable(store:reason:)`` (503).
/// - ``run()`` follows the store's notifications and resyncs every ``resyncInterval`` (push
///   channels such as Redis pub/sub are fire-and-forget), pushing whole snapshots to watchers,
///   and recovers by itself when the store returns.
public final class StoreBackend<Store: CatalogStore>: RegistryBackend {
    public let store: Store
    public let resyncInterval: Duration
    let logger: Logger
    /// Index of the last published snapshot; watchers wait on it.
    let signal = ChangeSignal()
    /// Bumped by store notifications and local writes; the refresh loop waits on it.
    let nudges = ChangeSignal()
    private let nudgeCount = Mutex<UInt64>(0)
    private let state = Mutex<Cache>(Cache())
    /// Serialises this process's registrations (see ``AsyncLock``).
    let writes = AsyncLock()

    struct Cache {
        var snapshot: CatalogSnapshot?
        var unavailable: String?
    }

    /// Attempts of a conditional write before giving up with 503.
    static var maxWriteAttempts: Int { 200 }

    public var displayName: String { store.displayName }

    /// - Parameters:
    ///   - store: where the catalog lives.
    ///   - resyncInterval: full re-read period, the safety net for lost notifications.
    public init(store: Store, resyncInterval: Duration = .seconds(5), logger: Logger) {
        self.store = store
        self.resyncInterval = resyncInterval
        self.logger = logger
    }

    // MARK: writes

    /// What a registration does to the store, decided from the current catalog.
    enum RegisterPlan: Hashable, Sendable {
        /// Identical to what is stored: only refresh the TTL.
        case refresh(InstanceRecord)
        /// Store this record (createIndex 0 when new).
        case write(InstanceRecord, created: Bool)
    }

    /// The pure decision: validation and route ownership exactly as the memory backend does them,
    /// against the catalog as read from the store.
    static func plan(service: String, instanceID: String, registration: ServiceRegistration, in catalog: CatalogSnapshot) throws(RegistryBackendError)
        -> RegisterPlan
    {
        var state = RegistryState(clock: ContinuousClock())
        for r in catalog.allInstances { state.restore(r) }
        let existing = state.record(service: service, instanceID: instanceID)
        let outcome: RegistryState<ContinuousClock>.RegisterOutcome
        do {
            outcome = try state.register(service: service, instanceID: instanceID, registration: registration)
        } catch {
            switch error {
            case .invalid(let e): throw .invalid(e)
            case .conflict(let field, let route, let owner): throw .conflict(field: field, route: route, owner: owner)
            }
        }
        if let existing, existing.registration == outcome.record.registration { return .refresh(existing) }
        var record = outcome.record
        record.createIndex = existing?.createIndex ?? 0
        record.modifyIndex = 0
        record.heartbeatAgeSeconds = nil
        record.expiresInSeconds = nil
        return .write(record, created: existing == nil)
    }

    public func register(service: String, instanceID: String, registration: ServiceRegistration) async throws -> RegisterResult {
        try await writes.withLock { try await self.registerOnce(service: service, instanceID: instanceID, registration: registration) }
    }

    /// One registration with its optimistic retries (called holding ``writes``).
    func registerOnce(service: String, instanceID: String, registration: ServiceRegistration) async throws -> RegisterResult {
        for attempt in 0..<Self.maxWriteAttempts {
            let read = try await guarded { try await store.load() }
            publish(read.snapshot)
            switch try Self.plan(service: service, instanceID: instanceID, registration: registration, in: read.snapshot) {
            case .refresh(let record):
                if try await guarded({ try await store.refresh(service: service, instanceID: instanceID) }) {
                    return RegisterResult(record: record, created: false)
                }
            case .write(let record, let created):
                if let stored = try await guarded({ try await store.write(record, guard: read.guardToken) }) {
                    await reread()
                    return RegisterResult(record: stored, created: created)
                }
            }
            // Another writer got in between: back off a little (randomised, growing) and re-read.
            try await Task.sleep(for: .microseconds(Int.random(in: 100...(1000 + 500 * min(attempt, 40)))))
        }
        throw RegistryBackendError.unavailable(store: displayName, reason: "too many concurrent writers; try again")
    }

    public func heartbeat(service: String, instanceID: String) async throws -> Bool {
        try await guarded { try await store.refresh(service: service, instanceID: instanceID) }
    }

    public func deregister(service: String, instanceID: String) async throws -> Bool {
        let removed = try await guarded { try await store.remove(service: service, instanceID: instanceID) }
        if removed { await reread() }
        return removed
    }

    /// After a local write: read the catalog again so this backend's cache and watchers have it
    /// at once (not only when the store's notification arrives), and wake the refresh loop.
    func reread() async {
        if let read = try? await store.load() { publish(read.snapshot) }
        nudge()
    }

    /// Runs a store operation, reporting any failure as the store being unavailable.
    func guarded<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RegistryBackendError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            markUnavailable("\(error)")
            throw RegistryBackendError.unavailable(store: displayName, reason: "\(error)")
        }
    }

    // MARK: reads

    public func snapshot() async throws -> CatalogSnapshot {
        do {
            let read = try await store.load()
            publish(read.snapshot)
            return read.snapshot
        } catch {
            markUnavailable("\(error)")
            if var cached = state.withLock({ $0.snapshot }) {
                cached.stale = true
                return cached
            }
            throw RegistryBackendError.unavailable(store: displayName, reason: "\(error)")
        }
    }

    /// The last snapshot read from the store, if any (marked stale while the store is down).
    public var cachedSnapshot: CatalogSnapshot? {
        state.withLock { c in
            guard var s = c.snapshot else { return nil }
            s.stale = c.unavailable != nil
            return s
        }
    }

    public func watch() -> CatalogWatch {
        CatalogWatch { [self] after in
            guard let after else { return try await self.snapshot() }
            guard await signal.wait(after: after) else { return nil }
            if let s = cachedSnapshot, s.index != after { return s }
            return try await self.snapshot()
        }
    }

    /// Installs a snapshot read by a request and wakes watchers when its index moved. A read
    /// that finishes after a newer one is dropped, so watchers never go backwards; only the
    /// resync loop may lower the index (a store that lost its data), see ``publishResync(_:)``.
    func publish(_ snapshot: CatalogSnapshot) {
        install(snapshot, authoritative: false)
    }

    /// A resync is authoritative: it may move the index backwards (a store that lost its data).
    func publishResync(_ snapshot: CatalogSnapshot) {
        install(snapshot, authoritative: true)
    }

    private func install(_ snapshot: CatalogSnapshot, authoritative: Bool) {
        let (recovered, index) = state.withLock { c -> (Bool, UInt64) in
            let was = c.unavailable != nil
            c.unavailable = nil
            if authoritative || (c.snapshot?.index ?? 0) <= snapshot.index { c.snapshot = snapshot }
            return (was, c.snapshot?.index ?? 0)
        }
        if recovered { logger.notice("registry store \(displayName) is reachable again") }
        if index != signal.index { signal.advance(to: index) }
    }

    func markUnavailable(_ reason: String) {
        let first = state.withLock { c -> Bool in
            defer { c.unavailable = reason }
            return c.unavailable == nil
        }
        if first { logger.warning("registry store \(displayName) is unavailable; serving the last snapshot as stale: \(reason)") }
    }

    func nudge() {
        let n = nudgeCount.withLock { c -> UInt64 in
            c += 1
            return c
        }
        nudges.advance(to: n)
    }

    // MARK: background

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.store.notifications { self.nudge() } }
                group.addTask { await self.refreshLoop() }
            }
        }
        signal.close()
        nudges.close()
    }

    /// Re-reads the store after each notification and at least every ``resyncInterval``; with
    /// back-off while the store is down.
    func refreshLoop() async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            // Read the nudge index before loading, so a notification during the load is not lost.
            let seen = nudges.index
            do {
                let read = try await store.load()
                publishResync(read.snapshot)
                backoff = .milliseconds(50)
                _ = await nudges.wait(after: seen, timeout: resyncInterval)
            } catch {
                if Task.isCancelled { return }
                markUnavailable("\(error)")
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }
}
