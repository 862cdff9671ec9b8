import Logging
import ServiceLifecycle
import TapperCore

/// The embedded, in-memory backend: a ``RegistryState`` on the continuous clock, an expiry
/// sweeper, and optional snapshots to disk so a restarted registry keeps its registrations.
///
/// Snapshots are written at most every ``flushInterval`` after a change (write to a temporary
/// file, fsync, rename, fsync the directory), and once more on shutdown. A crash can therefore
/// lose the last fraction of a second of changes; instances recover by themselves, because their
/// next heartbeat gets a 404 and clients re-register.
public actor MemoryBackend: RegistryBackend {
    public nonisolated let displayName: String
    var state: RegistryState<ContinuousClock>
    let signal: ChangeSignal
    let file: SnapshotFile?
    let logger: Logger
    var dirty = false
    /// How often the sweeper expires instances and flushes snapshots.
    public let sweepInterval: Duration
    public static let flushInterval: Duration = .milliseconds(200)

    /// - Parameters:
    ///   - dataDirectory: where to keep `catalog.json`; nil keeps everything in memory only.
    ///   - sweepInterval: how often expired instances are removed.
    /// - Throws: when an existing snapshot cannot be read.
    public init(dataDirectory: String? = nil, sweepInterval: Duration = .milliseconds(200), logger: Logger) throws {
        var state = RegistryState(clock: ContinuousClock())
        if let dataDirectory {
            let file = try SnapshotFile(directory: dataDirectory)
            if let saved = try file.load() {
                for record in saved.allInstances { state.restore(record) }
                logger.info("restored registrations from disk", metadata: ["instances": "\(saved.allInstances.count)", "path": "\(file.path)"])
            }
            self.file = file
            self.displayName = "memory (\(dataDirectory))"
        } else {
            self.file = nil
            self.displayName = "memory"
        }
        self.state = state
        self.signal = ChangeSignal(index: state.index)
        self.sweepInterval = sweepInterval
        self.logger = logger
    }

    public func register(service: String, instanceID: String, registration: ServiceRegistration) throws -> RegisterResult {
        let outcome: RegistryState<ContinuousClock>.RegisterOutcome
        do {
            outcome = try state.register(service: service, instanceID: instanceID, registration: registration)
        } catch {
            switch error {
            case .invalid(let e): throw RegistryBackendError.invalid(e)
            case .conflict(let field, let route, let owner): throw RegistryBackendError.conflict(field: field, route: route, owner: owner)
            }
        }
        changed()
        switch outcome {
        case .created(let r): return RegisterResult(record: r, created: true)
        case .updated(let r): return RegisterResult(record: r, created: false)
        }
    }

    public func heartbeat(service: String, instanceID: String) -> Bool {
        state.heartbeat(service: service, instanceID: instanceID)
    }

    public func deregister(service: String, instanceID: String) -> Bool {
        guard state.deregister(service: service, instanceID: instanceID) != nil else { return false }
        changed()
        return true
    }

    public func snapshot() -> CatalogSnapshot { state.snapshot() }

    public nonisolated func watch() -> CatalogWatch {
        CatalogWatch { [signal] after in
            if let after {
                guard await signal.wait(after: after) else { return nil }
            }
            return await self.snapshot()
        }
    }

    /// Waits up to `timeout` for the index to pass `after`; returns the catalog either way.
    public nonisolated func snapshot(after: UInt64, timeout: Duration) async -> CatalogSnapshot {
        _ = await signal.wait(after: after, timeout: timeout)
        return await snapshot()
    }

    /// Blocking queries and watches currently parked.
    public nonisolated var waitingQueries: Int { signal.waiterCount }

    private func changed() {
        if state.index != signal.index {
            dirty = true
            signal.advance(to: state.index)
        }
    }

    private func sweep() {
        let expired = state.expire()
        if !expired.isEmpty {
            for r in expired {
                logger.info("instance expired", metadata: ["service": "\(r.service)", "instance": "\(r.instanceID)"])
            }
            changed()
        }
    }

    private func flush() {
        guard dirty, let file else { return }
        do {
            try file.save(state.snapshot())
            dirty = false
        } catch {
            logger.error("could not write the registry snapshot", metadata: ["path": "\(file.path)", "error": "\(error)"])
        }
    }

    public func run() async throws {
        if file == nil {
            logger.notice("registry backend: memory only; registrations are lost on restart (use --data-dir to keep them)")
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.sweepInterval)
                await self.tick()
            }
        }
        flush()
        signal.close()
    }

    private func tick() {
        sweep()
        flush()
    }
}
