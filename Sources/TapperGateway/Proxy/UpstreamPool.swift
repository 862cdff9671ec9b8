#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import NIOCore

/// Keep-alive upstream connections of one reactor, per instance (`host:port`).
///
/// Connections never cross reactors: a client connection's requests use connections of its
/// own reactor, so the data path never hops threads or takes a lock.
final class UpstreamPool {
    let reactor: Reactor
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

        func remove(_ handler: UpstreamHandler) {
            if let i = handlers.firstIndex(where: { $0 === handler }) { handlers.remove(at: i) }
        }
    }

    init(reactor: Reactor, maxIdlePerKey: Int, connectTimeout: TimeAmount) {
        self.reactor = reactor
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
        handler.owner = nil
        guard handler.isActive else { return }
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

    /// Closes every idle connection to instances not in `keep` (after a catalog change).
    func prune(keeping keep: Set<String>) {
        for (key, list) in idle where !keep.contains(key) {
            // The (now empty) list stays: connections in use keep a reference to it.
            for h in list.handlers { h.close() }
            list.handlers.removeAll()
        }
    }

    /// Closes every idle connection.
    func closeAll() {
        for list in idle.values {
            for h in list.handlers { h.close() }
            list.handlers.removeAll()
        }
    }

    /// Opens a new connection on this reactor and calls `completion` with it (never before
    /// returning). Each address `host` resolves to is tried in turn.
    func connect(host: String, port: Int, key: String, completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void) {
        let addresses: [SocketAddress4or6]
        do {
            addresses = try resolve(host: host, port: port)
        } catch {
            reactor.later { completion(.failure(.failed(error))) }
            return
        }
        let deadline = NIODeadline.now() + connectTimeout
        attempt(addresses[...], deadline: deadline, key: key, lastError: nil, completion: completion)
    }

    private func attempt(
        _ addresses: ArraySlice<SocketAddress4or6>, deadline: NIODeadline, key: String, lastError: SocketError?,
        completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void
    ) {
        guard let address = addresses.first else {
            let error = lastError ?? SocketError(operation: "connect \(key)", code: EADDRNOTAVAIL)
            reactor.later { completion(.failure(.failed(error))) }
            return
        }
        let rest = addresses.dropFirst()
        let reactor = self.reactor
        switch Sockets.startConnect(to: address) {
        case .failure(let error):
            attempt(rest, deadline: deadline, key: key, lastError: error, completion: completion)
        case .success(let (fd, connected)):
            guard let connection = Connection(fd: fd, reactor: reactor) else {
                return attempt(rest, deadline: deadline, key: key, lastError: SocketError(operation: "register", code: errno), completion: completion)
            }
            let handler = UpstreamHandler(poolKey: key, connection: connection)
            if connected {
                connection.handler = handler
                reactor.later { completion(.success(handler)) }
                return
            }
            // The timer holds the attempt weakly: a connect that succeeds leaves only an empty
            // weak reference in the reactor's timer heap until the deadline passes.
            let pending = PendingConnect(connection: connection, completion: completion)
            connection.onConnected = { [weak self] error in
                pending.finished = true
                if let error {
                    connection.close()
                    let failure = SocketError(operation: "connect \(key)", code: error)
                    if let self {
                        self.attempt(rest, deadline: deadline, key: key, lastError: failure, completion: completion)
                    } else {
                        completion(.failure(.failed(failure)))
                    }
                } else {
                    connection.handler = handler
                    completion(.success(handler))
                }
            }
            reactor.schedule(at: deadline) { [weak pending] in
                guard let pending, !pending.finished else { return }
                pending.finished = true
                pending.connection.onConnected = nil
                pending.connection.close()
                pending.completion(.failure(.timedOut))
            }
        }
    }

    /// Resolved addresses by `host:port`, for a few seconds: names are looked up (blocking)
    /// only when a new connection is needed, and numeric hosts need no lookup at all.
    private var resolved: [String: (addresses: [SocketAddress4or6], until: NIODeadline)] = [:]

    private func resolve(host: String, port: Int) throws(SocketError) -> [SocketAddress4or6] {
        let key = "\(host):\(port)"
        let now = NIODeadline.now()
        if let hit = resolved[key], hit.until > now { return hit.addresses }
        let addresses = try SocketAddress4or6.resolve(host: host, port: port)
        if resolved.count > 1024 { resolved.removeAll() }
        resolved[key] = (addresses, now + .seconds(10))
        return addresses
    }
}

/// A connect in progress, as its timeout sees it.
private final class PendingConnect {
    let connection: Connection
    let completion: (Result<UpstreamHandler, UpstreamConnectError>) -> Void
    var finished = false

    init(connection: Connection, completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void) {
        self.connection = connection
        self.completion = completion
    }
}

/// Why an upstream connection could not be opened.
enum UpstreamConnectError: Error {
    case timedOut
    case failed(SocketError)
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
