#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import Dispatch
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

    /// HTTP/2 counts for the gateway's status (the h2c sessions'), if any are kept.
    let h2Counters: H2Counters?

    init(reactor: Reactor, maxIdlePerKey: Int, connectTimeout: TimeAmount, h2Counters: H2Counters? = nil) {
        self.reactor = reactor
        self.h2Counters = h2Counters
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
        for (key, session) in h2Sessions where !keep.contains(key) { session.close() }
        for (key, list) in idle where !keep.contains(key) {
            // The (now empty) list stays: connections in use keep a reference to it.
            for h in list.handlers { h.close() }
            list.handlers.removeAll()
        }
    }

    /// Closes every idle connection.
    func closeAll() {
        for session in Array(h2Sessions.values) { session.close() }
        for list in idle.values {
            for h in list.handlers { h.close() }
            list.handlers.removeAll()
        }
    }

    /// Opens a new connection on this reactor and calls `completion` with it (never before
    /// returning). Each address `host` resolves to is tried in turn.
    ///
    /// An IP literal connects at once. A name is looked up off the reactor (see ``lookUp``), so
    /// a slow resolver never stalls the other connections of this loop; the connect timeout
    /// runs from here and covers the lookup.
    func connect(host: String, port: Int, key: String, completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void) {
        connectSocket(host: host, port: port, key: key) { result in
            completion(result.map { connection in
                let handler = UpstreamHandler(poolKey: key, connection: connection)
                connection.handler = handler
                return handler
            })
        }
    }

    /// Like ``connect(host:port:key:completion:)`` for an h2c instance: a new channel on the
    /// reactor's HTTP/2 session to it, opening the session first if there is none (or it ended).
    func connectH2(host: String, port: Int, key: String, completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void) {
        if let session = h2Sessions[key], !session.ended {
            session.openChannel(reactor: reactor, completion)
            return
        }
        let session = H2UpstreamSession(pool: self, key: key)
        h2Sessions[key] = session
        session.openChannel(reactor: reactor, completion)
        let reactor = self.reactor
        connectSocket(host: host, port: port, key: key) { result in session.connected(result, reactor: reactor) }
    }

    /// The HTTP/2 sessions of this reactor, by pool key (`h2c/host:port`).
    private var h2Sessions: [String: H2UpstreamSession] = [:]

    /// A session takes no new exchanges any more (closed, failed or GOAWAY).
    func sessionEnded(_ session: H2UpstreamSession) {
        if h2Sessions[session.key] === session { h2Sessions[session.key] = nil }
    }

    /// Opens a connection (see ``connect(host:port:key:completion:)``); the caller sets its handler.
    private func connectSocket(host: String, port: Int, key: String, completion: @escaping (Result<Connection, UpstreamConnectError>) -> Void) {
        let deadline = NIODeadline.now() + connectTimeout
        if let literal = SocketAddress4or6(numericHost: host, port: port) {
            attempt([literal][...], deadline: deadline, key: key, lastError: nil, completion: completion)
            return
        }
        let name = "\(host):\(port)"
        if let hit = resolved[name], hit.until > reactor.tickTime {
            attempt(hit.addresses[...], deadline: deadline, key: key, lastError: nil, completion: completion)
            return
        }
        lookUp(host: host, port: port, name: name, deadline: deadline) { [weak self] result in
            switch result {
            case .success(let addresses):
                guard let self else { return completion(.failure(.failed(SocketError(operation: "connect \(key)", code: ECANCELED)))) }
                self.attempt(addresses[...], deadline: deadline, key: key, lastError: nil, completion: completion)
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    private func attempt(
        _ addresses: ArraySlice<SocketAddress4or6>, deadline: NIODeadline, key: String, lastError: SocketError?,
        completion: @escaping (Result<Connection, UpstreamConnectError>) -> Void
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
            if connected {
                reactor.later { completion(.success(connection)) }
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
                    completion(.success(connection))
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

    /// Resolved addresses by `host:port`, for a few seconds: names are looked up only when a
    /// new connection is needed, and IP literals need no lookup at all.
    private var resolved: [String: (addresses: [SocketAddress4or6], until: NIODeadline)] = [:]
    /// Lookups in flight by `host:port`, with the connects waiting for each: one lookup serves
    /// every connect that asks for the name meanwhile.
    private var lookups: [String: [PendingLookup]] = [:]

    /// Looks names up (blocking, `getaddrinfo`); called off the reactor. Tests put a slow or
    /// counting resolver here.
    var resolver: @Sendable (_ host: String, _ port: Int) -> Result<[SocketAddress4or6], SocketError> = { host, port in
        Result { () throws(SocketError) in try SocketAddress4or6.resolve(host: host, port: port) }
    }

    /// Where lookups run: `getaddrinfo` blocks (for as long as the resolver takes), so never on
    /// a reactor; the result is posted back with ``Reactor/execute(_:)``.
    private static let resolverQueue = DispatchQueue(label: "tapper.upstream-resolver", attributes: .concurrent)

    /// Resolves `host` off the reactor and calls `done` on it: with the addresses, with the
    /// lookup's error, or with ``UpstreamConnectError/timedOut`` at `deadline` if the lookup has
    /// not answered by then.
    private func lookUp(
        host: String, port: Int, name: String, deadline: NIODeadline,
        done: @escaping (Result<[SocketAddress4or6], UpstreamConnectError>) -> Void
    ) {
        let pending = PendingLookup(done)
        reactor.schedule(at: deadline) { [weak pending] in
            guard let pending, !pending.finished else { return }
            pending.finished = true
            pending.done(.failure(.timedOut))
        }
        if lookups[name] != nil {
            lookups[name]!.append(pending)
            return
        }
        lookups[name] = [pending]
        let reactor = self.reactor
        let resolver = self.resolver
        let pool = ReactorBound(self)
        Self.resolverQueue.async {
            let result = resolver(host, port)
            reactor.execute { pool.value.lookupFinished(name, result) }
        }
    }

    /// A lookup's result, back on the reactor.
    private func lookupFinished(_ name: String, _ result: Result<[SocketAddress4or6], SocketError>) {
        let waiting = lookups.removeValue(forKey: name) ?? []
        if case .success(let addresses) = result {
            if resolved.count > 1024 { resolved.removeAll() }
            resolved[name] = (addresses, reactor.tickTime + .seconds(10))
        }
        for pending in waiting where !pending.finished {
            pending.finished = true
            pending.done(result.mapError { .failed($0) })
        }
    }
}

/// A connect waiting for a name lookup, as the lookup and the connect timeout see it.
private final class PendingLookup {
    let done: (Result<[SocketAddress4or6], UpstreamConnectError>) -> Void
    var finished = false

    init(_ done: @escaping (Result<[SocketAddress4or6], UpstreamConnectError>) -> Void) {
        self.done = done
    }
}

/// A connect in progress, as its timeout sees it.
private final class PendingConnect {
    let connection: Connection
    let completion: (Result<Connection, UpstreamConnectError>) -> Void
    var finished = false

    init(connection: Connection, completion: @escaping (Result<Connection, UpstreamConnectError>) -> Void) {
        self.connection = connection
        self.completion = completion
    }
}

/// Why an upstream connection could not be opened.
enum UpstreamConnectError: Error {
    case timedOut
    case failed(SocketError)

    var isTimeout: Bool {
        if case .timedOut = self { return true }
        return false
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
