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
    private var idle: [String: [UpstreamHandler]] = [:]

    init(eventLoop: any EventLoop, maxIdlePerKey: Int, connectTimeout: TimeAmount) {
        self.eventLoop = eventLoop
        self.maxIdlePerKey = maxIdlePerKey
        self.connectTimeout = connectTimeout
    }

    /// A pooled connection to `key`, most recently used first, or nil.
    ///
    /// The lists are changed in place through the dictionary: copying a list out and writing it
    /// back made every take and release copy the whole array (and retain each connection in it).
    func takeIdle(_ key: String) -> UpstreamHandler? {
        while let h = idle[key]?.popLast() {
            if h.isActive { return h }
        }
        return nil
    }

    /// Returns a connection after a complete exchange.
    func release(_ handler: UpstreamHandler) {
        guard handler.isActive else { return }
        handler.owner = nil
        if let count = idle[handler.poolKey]?.count, count >= maxIdlePerKey {
            handler.close()
            return
        }
        idle[handler.poolKey, default: []].append(handler)
        handler.resumeReads()
    }

    func remove(_ handler: UpstreamHandler) {
        guard let i = idle[handler.poolKey]?.firstIndex(where: { $0 === handler }) else { return }
        idle[handler.poolKey]?.remove(at: i)
    }

    /// Closes every idle connection to instances not in `keep` (after a catalog change).
    func prune(keeping keep: Set<String>) {
        for (key, list) in idle where !keep.contains(key) {
            for h in list { h.close() }
            idle[key] = nil
        }
    }

    /// Closes every idle connection; the futures complete when they are closed.
    func closeAll() -> [EventLoopFuture<Void>] {
        var closed: [EventLoopFuture<Void>] = []
        for list in idle.values {
            for h in list {
                if let channel = h.context?.channel { closed.append(channel.closeFuture) }
                h.close()
            }
        }
        idle.removeAll()
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
