import ServiceLifecycle
import TapperCore
import TapperRegistry

/// A custom backend written only against the public API, to show that the protocol is enough to
/// plug in storage of your own: an actor around ``RegistryState`` with a ``ChangeSignal``.
actor TinyBackend: RegistryBackend {
    nonisolated let displayName = "tiny (test)"
    var state = RegistryState(clock: ContinuousClock())
    let signal = ChangeSignal()

    func register(service: String, instanceID: String, registration: ServiceRegistration) throws -> RegisterResult {
        do {
            let outcome = try state.register(service: service, instanceID: instanceID, registration: registration)
            signal.advance(to: state.index)
            switch outcome {
            case .created(let r): return RegisterResult(record: r, created: true)
            case .updated(let r): return RegisterResult(record: r, created: false)
            }
        } catch {
            switch error {
            case .invalid(let e): throw RegistryBackendError.invalid(e)
            case .conflict(let f, let r, let o): throw RegistryBackendError.conflict(field: f, route: r, owner: o)
            }
        }
    }

    func heartbeat(service: String, instanceID: String) -> Bool { state.heartbeat(service: service, instanceID: instanceID) }

    func deregister(service: String, instanceID: String) -> Bool {
        guard state.deregister(service: service, instanceID: instanceID) != nil else { return false }
        signal.advance(to: state.index)
        return true
    }

    func snapshot() -> CatalogSnapshot { state.snapshot() }

    nonisolated func watch() -> CatalogWatch {
        CatalogWatch { [signal] after in
            if let after { guard await signal.wait(after: after) else { return nil } }
            return await self.snapshot()
        }
    }

    func sweep() {
        if !state.expire().isEmpty { signal.advance(to: state.index) }
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                await self.sweep()
            }
        }
        signal.close()
    }
}
