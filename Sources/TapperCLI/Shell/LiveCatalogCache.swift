import Dispatch
import Foundation
import TapperClient
import TapperCore

extension LiveCatalog {
    init(snapshot: CatalogSnapshot) {
        var services: [String: [String]] = [:]
        var paths = Set<String>()
        for s in snapshot.services {
            services[s.name] = s.instances.map(\.instanceID)
            for r in s.instances { for route in r.registration.routes { paths.insert(r.registration.prefix + route.path) } }
        }
        self.init(services: services, routePaths: paths.sorted())
    }
}

/// The registry's catalog for completion, cached for a few seconds. A TAB press never waits more
/// than ``maxWait`` for it: when the registry is slow or down, completion answers with what it had
/// (or nothing) and the fetch finishes in the background.
final class LiveCatalogCache: @unchecked Sendable {
    let freshFor: Duration
    let maxWait: Duration
    private let lock = NSLock()
    private var value = LiveCatalog()
    private var fetchedAt: ContinuousClock.Instant?
    private var inFlight: DispatchSemaphore?
    private let registryURL: @Sendable () -> String

    init(freshFor: Duration = .seconds(3), maxWait: Duration = .milliseconds(200), registryURL: @escaping @Sendable () -> String) {
        self.freshFor = freshFor
        self.maxWait = maxWait
        self.registryURL = registryURL
    }

    /// Forget the cached catalog (after `use registry …`).
    func invalidate() {
        lock.withLock { fetchedAt = nil; value = LiveCatalog() }
    }

    func get() -> LiveCatalog {
        let done: DispatchSemaphore = lock.withLock {
            if let at = fetchedAt, ContinuousClock.now - at < freshFor { return DispatchSemaphore(value: 1) }
            if let running = inFlight { return running }
            let semaphore = DispatchSemaphore(value: 0)
            inFlight = semaphore
            let url = registryURL()
            Task {
                let snapshot = try? await RegistryClient(baseURL: url, timeout: .seconds(2)).catalog()
                self.lock.withLock {
                    if let snapshot { self.value = LiveCatalog(snapshot: snapshot) }
                    self.fetchedAt = .now  // a failure is remembered too, so TAB does not retry at once
                    self.inFlight = nil
                }
                semaphore.signal()
            }
            return semaphore
        }
        let millis = Int(maxWait.milliseconds)
        if done.wait(timeout: .now() + .milliseconds(millis)) == .success { done.signal() }  // let other waiters through
        return lock.withLock { value }
    }
}
