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

    /// - Parameter onListening: receives the bound port (useful with port 0).
    public init(gateway: Gateway, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.gateway = gateway
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try await serveUntilDrained()
        // The quiescing helper (owned by serveUntilDrained) is gone by now: its deinit completes a
        // promise on an event loop, which must happen before the loops shut down.
        try await gateway.group.shutdownGracefully()
        logger.notice("gateway stopped")
    }

    private func serveUntilDrained() async throws {
        let gateway = self.gateway
        let config = gateway.configuration
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
                    try channel.pipeline.syncOperations.addHandler(ProxyHandler(gateway: gateway, loop: loop))
                }
            }
            .bind(host: config.host, port: config.port)
            .get()
        let port = channel.localAddress?.port ?? config.port
        logger.notice("gateway listening on http://\(config.host):\(port)")
        await onListening(port)

        try? await gracefulShutdown()

        logger.notice("gateway draining", metadata: ["in_flight": "\(gateway.requestsInFlight)", "drain_timeout": "\(config.drainTimeout)"])
        let drained = gateway.group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: drained)
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                (try? await drained.futureResult.get()) != nil
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
        try? await channel.closeFuture.get()
    }
}
