import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle

/// The gateway's listener as a `Service`: binds, serves until graceful shutdown, then stops
/// accepting, lets in-flight requests finish within the drain timeout, and exits.
public struct GatewayServer: Service {
    public let gateway: Gateway
    let logger: Logger
    let onListening: @Sendable (Int) async -> Void
    let onAdminListening: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - onListening: receives the bound port (useful with port 0).
    ///   - onAdminListening: receives the admin listener's port (with `adminPort` set), before `onListening` is called.
    public init(
        gateway: Gateway, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in },
        onAdminListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.gateway = gateway
        self.logger = logger
        self.onListening = onListening
        self.onAdminListening = onAdminListening
    }

    public func run() async throws {
        try await serveUntilDrained()
        // The quiescing helper (owned by serveUntilDrained) is gone by now: its deinit completes a
        // promise on an event loop, which must happen before the loops shut down.
        try await gateway.group.shutdownGracefully()
        logger.notice("gateway stopped")
    }

    /// One listening socket, with the quiescing helper that drains its connections.
    private struct Listener {
        let channel: any Channel
        let quiesce: ServerQuiescingHelper
        var port: Int
    }

    private func listen(role: ProxyHandler.Role, host: String, port: Int) async throws -> Listener {
        let gateway = self.gateway
        let quiesce = ServerQuiescingHelper(group: gateway.group)
        let channel = try await ServerBootstrap(group: gateway.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 8)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let loop = gateway.context(for: channel.eventLoop)
                    // Raw bytes in and out: the proxy handler parses and frames HTTP/1.1 itself.
                    try channel.pipeline.syncOperations.addHandler(ProxyHandler(gateway: gateway, loop: loop, role: role))
                }
            }
            .bind(host: host, port: port)
            .get()
        return Listener(channel: channel, quiesce: quiesce, port: channel.localAddress?.port ?? port)
    }

    private func serveUntilDrained() async throws {
        let gateway = self.gateway
        let config = gateway.configuration
        let main = try await listen(role: .main, host: config.host, port: config.port)
        var listeners = [main]
        if let adminPort = config.adminPort {
            let admin: Listener
            do {
                admin = try await listen(role: .admin, host: config.adminHost, port: adminPort)
            } catch {
                try? await main.channel.close()
                throw error
            }
            listeners.append(admin)
            logger.notice("gateway admin endpoints on http://\(config.adminHost):\(admin.port)")
            await onAdminListening(admin.port)
        }
        logger.notice("gateway listening on http://\(config.host):\(main.port)")
        await onListening(main.port)

        try? await gracefulShutdown()

        logger.notice("gateway draining", metadata: ["in_flight": "\(gateway.requestsInFlight)", "drain_timeout": "\(config.drainTimeout)"])
        let loop = gateway.group.next()
        let drainedEach = listeners.map { listener in
            let promise = loop.makePromise(of: Void.self)
            listener.quiesce.initiateShutdown(promise: promise)
            return promise.futureResult
        }
        let drained = EventLoopFuture.andAllSucceed(drainedEach, on: loop)
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                (try? await drained.get()) != nil
            }
            group.addTask {
                try? await Task.sleep(for: config.drainTimeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if !finished {
            logger.warning("drain timeout reached; closing the remaining connections", metadata: ["in_flight": "\(gateway.requestsInFlight)"])
        }
        // Close pooled upstream connections and wait until they are gone, so nothing is left
        // to run on the event loops when they shut down.
        for loop in gateway.group.makeIterator() {
            let bound = gateway.loops[ObjectIdentifier(loop)]!
            let closing = try? await loop.flatSubmit {
                let futures = bound.value.pool.closeAll()
                bound.value.accessLog?.flush()
                return EventLoopFuture.andAllComplete(futures, on: loop)
            }.get()
            _ = closing
        }
        for listener in listeners { try? await listener.channel.closeFuture.get() }
    }
}
