#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import Atomics
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The gateway's listener as a `Service`: starts the I/O threads (one ``Reactor`` each, with
/// its ``LoopContext``), binds, serves until graceful shutdown, then stops accepting, lets
/// in-flight requests finish within the drain timeout, stops the threads and returns.
public struct GatewayServer: Service {
    public let gateway: Gateway
    let logger: Logger
    let onListening: @Sendable (Int) async -> Void
    let onAdminListening: @Sendable (Int) async -> Void
    let onTLSListening: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - onListening: receives the bound port (useful with port 0).
    ///   - onAdminListening: receives the admin listener's port (with `adminPort` set), before `onListening` is called.
    ///   - onTLSListening: receives the HTTPS listener's port (with `tlsPort` set), before `onListening` is called.
    public init(
        gateway: Gateway, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in },
        onAdminListening: @escaping @Sendable (Int) async -> Void = { _ in },
        onTLSListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.gateway = gateway
        self.logger = logger
        self.onListening = onListening
        self.onAdminListening = onAdminListening
        self.onTLSListening = onTLSListening
    }

    /// The I/O threads of one run, and the state each one owns (created here, used only on
    /// its reactor from then on).
    struct Threads {
        let reactors: [Reactor]
        let loops: [ReactorBound<LoopContext>]

        init(gateway: Gateway) {
            reactors = Reactor.start(count: gateway.threadCount)
            loops = reactors.map { ReactorBound(LoopContext(reactor: $0, gateway: gateway)) }
        }

        var each: Zip2Sequence<[Reactor], [ReactorBound<LoopContext>]> { zip(reactors, loops) }
    }

    public func run() async throws {
        let limit = Self.raiseFileLimit()
        logger.debug("open files limit: \(limit)")
        let threads = Threads(gateway: gateway)
        var fds: [Int32] = []
        do {
            try await serveUntilDrained(threads, listenFDs: &fds)
        } catch {
            await stop(threads, closing: fds)
            throw error
        }
        await stop(threads, closing: fds)
        logger.notice("gateway stopped")
    }

    /// Raises the open-files limit as far as it goes: every client connection, tunnel or
    /// pooled upstream connection is a descriptor, and the usual soft limit of 1,024 would cap
    /// the gateway at about 500 tunnels (each holds two). The hard limit is raised too when the
    /// process may (root), up to the kernel's `fs.nr_open`. Returns the soft limit now in force.
    @discardableResult
    static func raiseFileLimit() -> UInt {
        var current = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &current) == 0 else { return 0 }
        var wanted = current
        if let text = try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8),
            let nrOpen = rlim_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), nrOpen > current.rlim_max
        {
            wanted.rlim_max = nrOpen
            wanted.rlim_cur = nrOpen
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &wanted) == 0 { return UInt(nrOpen) }
        }
        wanted = current
        wanted.rlim_cur = current.rlim_max
        if wanted.rlim_cur != current.rlim_cur, setrlimit(Int32(RLIMIT_NOFILE.rawValue), &wanted) == 0 { return UInt(wanted.rlim_cur) }
        return UInt(current.rlim_cur)
    }

    private func stop(_ threads: Threads, closing fds: [Int32]) async {
        for (reactor, loop) in threads.each {
            await reactor.submit { loop.value.closeEverything() }
            await reactor.stop()
        }
        for fd in fds { close(fd) }
    }

    /// Binds `host:port` and has every reactor accept from it; with `tls`, connections are
    /// HTTPS (TLS with the loop's current ``LoopContext/tlsContexts``).
    private func listen(_ threads: Threads, role: ProxyHandler.Role, host: String, port: Int, tls: Bool = false) async throws -> (fd: Int32, port: Int) {
        let (fd, bound) = try Sockets.listen(host: host, port: port)
        let gateway = self.gateway
        for (reactor, loop) in threads.each {
            await reactor.submit {
                let context = loop.value
                let acceptor = Acceptor(fd: fd, reactor: reactor) { connection, peer in
                    if tls {
                        guard let contexts = context.tlsContexts, let session = TLSSession(contexts: contexts, fd: connection.fd) else {
                            connection.close()
                            return
                        }
                        connection.tls = session
                    }
                    let handler = ProxyHandler(gateway: gateway, loop: context, role: role, connection: connection, peer: peer, secure: tls)
                    connection.handler = handler
                    handler.start()
                }
                context.acceptors.append(acceptor)
                acceptor.start()
            }
        }
        return (fd, bound)
    }

    /// Makes `contexts` what new HTTPS connections use on every reactor (connections already
    /// open keep theirs) and what status reports.
    private func install(_ contexts: TLSContexts, on threads: Threads) async {
        gateway.tlsContexts.withLock { $0 = contexts }
        for (reactor, loop) in threads.each {
            let bound = ReactorBound(contexts)
            await reactor.submit { loop.value.tlsContexts = bound.value }
        }
    }

    private func serveUntilDrained(_ threads: Threads, listenFDs: inout [Int32]) async throws {
        let gateway = self.gateway
        let config = gateway.configuration
        var watcher: Task<Void, Never>? = nil
        defer { watcher?.cancel() }
        if let tlsPort = config.tlsPort {
            let contexts = try TLSContexts(config.tlsCertificates, allowH2: config.http2)
            await install(contexts, on: threads)
            let tls = try await listen(threads, role: .main, host: config.host, port: tlsPort, tls: true)
            listenFDs.append(tls.fd)
            gateway.tlsBoundPort.store(tls.port, ordering: .relaxed)
            logger.notice("gateway listening on https://\(config.host):\(tls.port)", metadata: ["certificates": "\(contexts.summary)"])
            watcher = Task { [logger] in
                let gateway = self.gateway
                await TLSCertificateWatcher(files: config.tlsCertificates, allowH2: config.http2, logger: logger).watch { new in
                    await self.install(new, on: threads)
                } failed: {
                    gateway.tlsReloadFailureCount.wrappingIncrement(ordering: .relaxed)
                }
            }
            await onTLSListening(tls.port)
        }
        let main = try await listen(threads, role: .main, host: config.host, port: config.port)
        listenFDs.append(main.fd)
        if let adminPort = config.adminPort {
            let admin = try await listen(threads, role: .admin, host: config.adminHost, port: adminPort)
            listenFDs.append(admin.fd)
            logger.notice("gateway admin endpoints on http://\(config.adminHost):\(admin.port)")
            await onAdminListening(admin.port)
        }
        logger.notice("gateway listening on http://\(config.host):\(main.port) (\(threads.reactors.count) I/O thread\(threads.reactors.count == 1 ? "" : "s"))")
        await onListening(main.port)

        try? await gracefulShutdown()

        logger.notice("gateway draining", metadata: ["in_flight": "\(gateway.requestsInFlight)", "drain_timeout": "\(config.drainTimeout)"])
        // Every reactor stops accepting and asks its connections to finish; each reports when
        // its last client connection is gone.
        let drained = AsyncStream<Void>.makeStream()
        for (reactor, loop) in threads.each {
            reactor.execute { loop.value.quiesce { drained.continuation.yield() } }
        }
        // Once no reactor polls the listening sockets any more, close them: new connections are
        // refused at once instead of waiting in the backlog until the process exits.
        for reactor in threads.reactors { await reactor.submit {} }
        for fd in listenFDs { close(fd) }
        listenFDs = []
        let reactorCount = threads.reactors.count
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                var left = reactorCount
                for await _ in drained.stream {
                    left -= 1
                    if left == 0 { return true }
                }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: config.drainTimeout)
                return false
            }
            let first = await group.next() ?? false
            drained.continuation.finish()
            group.cancelAll()
            return first
        }
        if !finished {
            logger.warning("drain timeout reached; closing the remaining connections", metadata: ["in_flight": "\(gateway.requestsInFlight)"])
        }
    }
}
