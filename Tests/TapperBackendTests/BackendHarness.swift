import Foundation
import Logging
import ServiceLifecycle
import Testing
import TapperCore
import TapperRegistry
import TapperRegistryConsul
import TapperRegistryEtcd
import TapperRegistryRedis
import TapperTesting

/// The backends the conformance suite runs on.
enum BackendKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, tiny, redis, etcd, consul

    var testDescription: String { rawValue }

    /// Backends backed by a shared store that can be killed and restarted.
    var store: StoreServer.Kind? {
        switch self {
        case .redis: return .redis
        case .etcd: return .etcd
        case .memory, .tiny, .consul: return nil
        }
    }

    /// Whether the catalog lives in a store shared by several backends (and can go down).
    var isShared: Bool { store != nil || self == .consul }

    /// Every backend whose tests should run here (a store whose server is missing is left out,
    /// unless `CI` is set: then it is in, and starting it fails the test).
    static var runnable: [BackendKind] { allCases.filter { $0.store.map(StoreServer.shouldRun) ?? true } }
    static var shared: [BackendKind] { runnable.filter(\.isShared) }

    /// etcd rounds lease TTLs up to its minimum (2 s with default election settings).
    var shortTTL: Double { self == .etcd ? 2 : 1 }
}

/// A store the tests can take down and bring back: a real server process or the fake Consul.
protocol StoreProcess: Sendable {
    var url: String { get }
    var port: Int { get }
    /// Takes the store down (a killed process).
    func kill() async throws
    /// Brings it back on the same port with its data.
    func start() async throws
    /// Stops it for good.
    func stop() async
}

extension StoreServer: StoreProcess {}

extension FakeConsul: StoreProcess {
    func kill() async throws { await stop() }
}

/// One backend under test, running under a `ServiceGroup`, plus its store process.
final class BackendHarness: Sendable {
    let kind: BackendKind
    let server: (any StoreProcess)?
    let backend: any RegistryBackend
    let group: ServiceGroup
    let task: Task<Void, any Error>

    static var logger: Logger {
        var l = Logger(label: "test.backend")
        l.logLevel = .critical
        return l
    }

    private init(kind: BackendKind, server: (any StoreProcess)?, backend: any RegistryBackend) {
        self.kind = kind
        self.server = server
        self.backend = backend
        let group = ServiceGroup(configuration: .init(services: [backend], logger: Self.logger))
        self.group = group
        task = Task { try await group.run() }
    }

    /// Builds a fresh backend of `kind` (starting its store when it has one).
    static func start(_ kind: BackendKind) async throws -> BackendHarness {
        let server: (any StoreProcess)?
        if kind == .consul {
            server = try await FakeConsul()
        } else if let store = kind.store {
            server = try await StoreServer(store)
        } else {
            server = nil
        }
        return BackendHarness(kind: kind, server: server, backend: try makeBackend(kind, server: server))
    }

    static func makeBackend(_ kind: BackendKind, server: (any StoreProcess)?) throws -> any RegistryBackend {
        switch kind {
        case .memory: return try MemoryBackend(sweepInterval: .milliseconds(50), logger: logger)
        case .tiny: return TinyBackend()
        case .redis: return try RedisBackend(redisURL: server!.url, resyncInterval: .seconds(1), logger: logger)
        case .etcd: return try EtcdBackend(etcdURL: server!.url, resyncInterval: .seconds(1), logger: logger)
        case .consul: return try ConsulBackend(consulURL: server!.url, resyncInterval: .seconds(1), logger: logger)
        }
    }

    /// Another client of the same catalog: a second backend on the same store (or this one, for
    /// in-process backends), running until `body` returns.
    func withPeer<T: Sendable>(_ body: @Sendable (any RegistryBackend) async throws -> T) async throws -> T {
        guard let server else { return try await body(backend) }
        let peer = BackendHarness(kind: kind, server: server, backend: try Self.makeBackend(kind, server: server))
        do {
            let result = try await body(peer.backend)
            await peer.shutdownBackend()
            return result
        } catch {
            await peer.shutdownBackend()
            throw error
        }
    }

    func shutdownBackend() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    func stop() async {
        await shutdownBackend()
        await server?.stop()
    }
}

/// Runs `body` with a fresh backend of `kind`, then stops it and its store.
func withBackend<T: Sendable>(_ kind: BackendKind, _ body: @Sendable (BackendHarness) async throws -> T) async throws -> T {
    let h = try await BackendHarness.start(kind)
    do {
        let result = try await body(h)
        await h.stop()
        return result
    } catch {
        await h.stop()
        throw error
    }
}

/// A registration of `url` claiming `routes` ("GET /path").
func registration(_ url: String = "http://127.0.0.1:9001", routes: [String] = [], ttl: Double = 30, version: String = "1.0.0") -> ServiceRegistration {
    ServiceRegistration(
        url: url,
        version: version,
        routes: routes.map { r in
            let parts = r.split(separator: " ", maxSplits: 1).map(String.init)
            return parts.count == 2 ? RouteSpec(methods: [parts[0]], path: parts[1]) : RouteSpec(methods: [], path: parts[0])
        },
        ttlSeconds: ttl
    )
}

/// Follows a ``CatalogWatch`` in a test, one snapshot at a time with a deadline.
struct Watcher: Sendable {
    let watch: CatalogWatch
    var last: UInt64?

    init(_ watch: CatalogWatch) { self.watch = watch }

    /// Reads the watch until a snapshot satisfies `condition`, or fails after `timeout`.
    @discardableResult
    mutating func next(timeout: Duration = .seconds(15), until condition: @Sendable (CatalogSnapshot) -> Bool = { _ in true }) async throws -> CatalogSnapshot {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let from = watch.after(last)
            let got = try await withTimeout(deadline - ContinuousClock.now) {
                var it = from.makeAsyncIterator()
                return try await it.next()
            }
            guard let got else { break }
            guard let snapshot = got else { throw TestFailure("the watch ended") }
            last = snapshot.index
            if condition(snapshot) { return snapshot }
        }
        throw TestFailure("timed out after \(timeout) waiting for a watched snapshot")
    }
}

/// Runs `body`, giving up (nil) after `timeout`.
func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

extension CatalogSnapshot {
    func has(_ name: String, _ instance: String) -> Bool {
        self.service(named: name)?.instances.contains { $0.instanceID == instance } == true
    }
}
