import Logging
import Synchronization
import ServiceLifecycle
import TapperClient
import TapperCore
import TapperGateway
import TapperRegistry

/// An in-process gateway on 127.0.0.1 (port 0) for tests, fed either by an in-process memory
/// backend (the default; register through ``LiveGateway/register(_:_:_:)``) or by a remote
/// registry URL.
public struct LiveGateway: Sendable {
    public let url: String
    public let port: Int
    /// The admin listener's URL when the configuration sets `adminPort`.
    public let adminURL: String?
    /// The HTTPS listener's port when the configuration sets `tlsPort`.
    public var tlsPort: Int? = nil
    public let gateway: Gateway
    public let backend: MemoryBackend?

    /// Registers an instance with the backend and waits until the gateway routes with it.
    public func register(_ service: String, _ instanceID: String, _ registration: ServiceRegistration) async throws {
        guard let backend else { throw TestFailure("this gateway follows a remote registry") }
        let result = try await backend.register(service: service, instanceID: instanceID, registration: registration)
        try await waitForIndex(result.record.modifyIndex)
    }

    public func deregister(_ service: String, _ instanceID: String) async throws {
        guard let backend else { throw TestFailure("this gateway follows a remote registry") }
        _ = await backend.deregister(service: service, instanceID: instanceID)
        try await waitForIndex(await backend.snapshot().index)
    }

    /// Waits until the gateway's table reflects catalog index `index`.
    public func waitForIndex(_ index: UInt64) async throws {
        try await poll("the gateway installs index \(index)") { gateway.state.snapshot.catalog.index >= index }
    }
}

/// Runs a gateway for the duration of `body`.
public func withLiveGateway<T: Sendable>(
    configuration: GatewayConfiguration = GatewayConfiguration(),
    registryURL: String? = nil,
    health: (any HealthView)? = nil,
    outcomes: (any OutcomeObserver)? = nil,
    balancers: BalancerFactory = BalancerFactory(),
    extraServices: @Sendable (Gateway) -> [any Service] = { _ in [] },
    _ body: @Sendable (LiveGateway) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test.gateway")
    logger.logLevel = .critical
    var config = configuration
    config.port = 0
    config.host = "127.0.0.1"
    config.threads = config.threads == 0 ? 2 : config.threads
    config.accessLog = false
    let backend: MemoryBackend?
    let source: Discovery.Source
    if let registryURL {
        backend = nil
        source = .remote(RegistryClient(baseURL: registryURL, timeout: .seconds(2)))
    } else {
        let b = try MemoryBackend(sweepInterval: .milliseconds(50), logger: logger)
        backend = b
        source = .backend(b)
    }
    let state = GatewayState(source: registryURL ?? "embedded")
    let gateway = Gateway(configuration: config, state: state, health: health ?? AllHealthy(), balancers: balancers, outcomes: outcomes)
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let adminPort = Mutex<Int?>(nil)
    let tlsPort = Mutex<Int?>(nil)
    let server = GatewayServer(
        gateway: gateway, logger: logger, onListening: { port in portContinuation.yield(port) },
        onAdminListening: { port in adminPort.withLock { $0 = port } },
        onTLSListening: { port in tlsPort.withLock { $0 = port } }
    )
    var services: [any Service] = []
    if let backend { services.append(backend) }
    services.append(Discovery(source: source, state: state, interval: .seconds(2), logger: logger))
    services.append(contentsOf: extraServices(gateway))
    services.append(server)
    let group = ServiceGroup(configuration: .init(services: services, logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next() else { throw TestFailure("gateway did not start") }
        let live = LiveGateway(
            url: "http://127.0.0.1:\(port)", port: port, adminURL: adminPort.withLock { $0 }.map { "http://127.0.0.1:\($0)" },
            tlsPort: tlsPort.withLock { $0 }, gateway: gateway, backend: backend
        )
        let result: Result<T, any Error>
        do {
            result = .success(try await body(live))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try result.get()
    }
}
