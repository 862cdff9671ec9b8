import Logging
import ServiceLifecycle
import TapperCore
import TapperRegistry

/// Runs a real registry on 127.0.0.1 (port 0) for the duration of `body`, then shuts it down
/// gracefully.
public func withLiveRegistry<T: Sendable>(
    backend: (any RegistryBackend)? = nil,
    configuration: RegistryServer.Configuration = .init(port: 0),
    _ body: @Sendable (_ url: String, _ backend: any RegistryBackend) async throws -> T
) async throws -> T {
    var logger = Logger(label: "test.registry")
    logger.logLevel = .critical
    let backend = try backend ?? MemoryBackend(logger: logger)
    var config = configuration
    config.port = 0
    let server = RegistryServer(backend: backend, configuration: config)
    let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
    let app = server.application(logger: logger) { port in portContinuation.yield(port) }
    let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var it = ports.makeAsyncIterator()
        guard let port = await it.next() else { throw TestFailure("registry did not start") }
        let result: Result<T, any Error>
        do {
            result = .success(try await body("http://127.0.0.1:\(port)", backend))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try result.get()
    }
}
