import Logging
import ServiceLifecycle
import TapperClient
import TapperCore
import TapperRegistry

/// Keeps the gateway's routing state in step with the registry, as a `Service`.
///
/// Two sources: a remote registry followed with the blocking catalog query (which also
/// resyncs every `interval`, since the query returns at least that often), or a backend
/// in the same process followed through its ``RegistryBackend/watch()``. When the registry is
/// unreachable the last table stays in use; the failure is logged once and retried with
/// back-off, and `/_tapper/status` shows the staleness.
public struct Discovery: Service {
    public enum Source: Sendable {
        case remote(RegistryClient)
        case backend(any RegistryBackend)
    }

    let source: Source
    let state: GatewayState
    let interval: Duration
    let logger: Logger

    public init(source: Source, state: GatewayState, interval: Duration = .seconds(30), logger: Logger) {
        self.source = source
        self.state = state
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        switch source {
        case .remote(let client):
            await cancelWhenGracefulShutdown { await followRemote(client) }
        case .backend(let backend):
            await cancelWhenGracefulShutdown { await followBackend(backend) }
        }
    }

    func followRemote(_ client: RegistryClient) async {
        var index: UInt64? = nil
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let snapshot: CatalogSnapshot
                if let last = index {
                    snapshot = try await client.catalog(index: last, wait: interval)
                } else {
                    snapshot = try await client.catalog()
                }
                if !state.discoveryStatus.reachable && state.discoveryStatus.lastError != nil {
                    logger.notice("registry at \(client.authority) is reachable again")
                }
                state.install(snapshot)
                index = snapshot.index
                backoff = .milliseconds(100)
            } catch is CancellationError {
                return
            } catch {
                if state.markUnreachable("\(error)") {
                    logger.warning("registry unreachable; routing with the last known table (\(state.snapshot.table.entries.count) routes) and retrying: \(error)")
                }
                index = nil
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    func followBackend(_ backend: any RegistryBackend) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await watchBackend(backend) }
            group.addTask { await monitorStaleness(backend) }
        }
    }

    /// A shared store can go down without the watch noticing (it only wakes for changes): read
    /// the catalog every few seconds and show a stale one (served from the backend's cache) as
    /// the registry being unreachable in `/_tapper/status`. Routing keeps the last table.
    func monitorStaleness(_ backend: any RegistryBackend) async {
        let period = min(interval, .seconds(5))
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            guard !Task.isCancelled, let snapshot = try? await backend.snapshot() else { continue }
            if snapshot.stale {
                if state.markUnreachable("the registry store \(backend.displayName) is unavailable; routing with the last known table") {
                    logger.warning("registry store \(backend.displayName) is unavailable; routing with the last known table")
                }
            } else if !state.discoveryStatus.reachable {
                state.install(snapshot)
            }
        }
    }

    func watchBackend(_ backend: any RegistryBackend) async {
        var backoff = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                for try await snapshot in backend.watch() {
                    state.install(snapshot)
                    backoff = .milliseconds(100)
                }
                return
            } catch is CancellationError {
                return
            } catch {
                if state.markUnreachable("\(error)") {
                    logger.warning("registry backend \(backend.displayName) failed; routing with the last known table: \(error)")
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }
}
