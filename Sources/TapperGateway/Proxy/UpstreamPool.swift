import NIOCore
import NIOPosix

/// Keep-alive upstream connections of one event loop, per instance (`host:port`).
///
/// Connections never cross event loops: a client connection's requests use connections of its
/// own loop, so the data path never hops threads or takes a lock.
final class UpstreamPool {
    let eventLoop: any EventLoop
    let maxIdlePerKey: Int
    let connectTimeout: TimeAmount
    /// Idle connections per key, boxed: a connection keeps its key's list, so releasing it
    /// needs no lookup, and taking one hashes the key once.
    private var idle: [String: IdleList] = [:]
    /// ``idle`` as a list while it has few keys: comparing a few short keys costs less than
    /// hashing one, on every request.
    private var linear: [(key: String, list: IdleList)] = []
    private static let linearLimit = 8

    /// The idle connections to one instance, most recently used last.
    final class IdleList {
        var handlers: [UpstreamHandler] = []
    }

    init(eventLoop: any EventLoop, maxIdlePerKey: Int, connectTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.maxIdlePerKey = maxIdlePerKey
        self.connectTimeout = connectTimeout
    }

    private func lookup(_ key: String) -> IdleList? {
        if idle.count <= Self.linearLimit {
            for entry in linear where entry.key == key { return entry.list }
            return nil
        }
        return idle[key]
    }

    private func list(_ key: String) -> IdleList {
        if let l = lookup(key) { return l }
        let l = IdleList()
        idle[key] = l
        // Lists are never removed (see prune), so the list mirrors the map until it outgrows it.
        if idle.count <= Self.linearLimit { linear.append((key, l)) } else { linear = [] }
        return l
    }

    /// A pooled connection to `key`, most recently used first, or nil.
    func takeIdle(_ key: String) -> UpstreamHandler? {
        guard let list = lookup(key) else { return nil }
        while let h = list.handlers.popLast() {
            if h.isActive { return h }
        }
        return nil
    }

    /// Returns a connection after a complete exchange.
    func release(_ handler: UpstreamHandler) {
        guard handler.isActive else { return }
        handler.owner = nil
        let list: IdleList
        if let l = handler.idleList {
            list = l
        } else {
            list = self.list(handler.poolKey)
            handler.idleList = list
        }
        if list.handlers.count >= maxIdlePerKey {
            handler.close()
            return
        }
        list.handlers.append(handler)
        handler.resumeReads()
    }

    func remove(_ handler: UpstreamHandler) {
        guard let list = idle[handler.poolKey], let i = list.handlers.firstIndex(where: { $0 === handler }) else { return }
        list.handlers.remove(at: i)
    }

    /// Closes every idle connection to instances not in `keep` (after a catalog change).
    func prune(keeping keep: Set<String>) {
        for (key, list) in idle where !keep.contains(key) {
            // The (now empty) list stays: connections in use keep a reference to it.
            for h in list.handlers { h.close() }
            list.handlers.removeAll()
        }
    }

    /// Closes every idle connection; the futures complete when they are closed.
    func closeAll() -> [EventLoopFuture<Void>] {
        var closed: [EventLoopFuture<Void>] = []
        for list in idle.values {
            for h in list.handlers {
                if let channel = h.context?.channel { closed.append(channel.closeFuture) }
                h.close()
            }
            list.handlers.removeAll()
        }
        return closed
    }

    /// Opens a new connection on this loop and calls `completion` on it.
    func connect(host: String, port: Int, key: String, completion: @escaping (Result<UpstreamHandler, any Error>) -> Void) {
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(connectTimeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(poolKey: key))
                }
            }
            .connect(host: host, port: port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    do {
                        let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                        handler.pool = self
                        completion(.success(handler))
                    } catch {
                        channel.close(promise: nil)
                        completion(.failure(error))
                    }
                case .failure(let error):
                    completion(.failure(error))
                }
            }
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
