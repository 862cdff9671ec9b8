#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import NIOConcurrencyHelpers
import NIOCore
import TapperCore

/// Posts OTLP export requests to a plain-`http` receiver over one kept-alive HTTP/1.1
/// connection, driven by a ``Reactor`` of its own (started with the first post).
///
/// An export is one `POST` at a time: its head and body written, the response head parsed
/// (``HTTPHeadParser``) and a `Content-Length` body skipped. Through AsyncHTTPClient the same
/// request cost about as much as encoding its 512 spans (its request state machine, pipeline
/// and per-request metadata), and every span pays for it on a one-core gateway. An `https`
/// receiver still goes through AsyncHTTPClient (``TraceExporter``).
///
/// A response with a chunked or close-delimited body gives its status and the connection is
/// closed rather than read to its end; so is a connection the receiver closes or a request that
/// times out. A request that fails is not sent again: the exporter counts it.
final class SpanPoster: @unchecked Sendable {
    enum Failure: Error, CustomStringConvertible {
        case connect(String)
        case closed(Int32?)
        case timedOut
        case malformed(String)

        var description: String {
            switch self {
            case .connect(let reason): return "cannot connect: \(reason)"
            case .closed(let code): return "connection closed before the response" + (code.map { ": " + String(cString: strerror($0)) } ?? "")
            case .timedOut: return "timed out"
            case .malformed(let reason): return "malformed response: \(reason)"
            }
        }
    }

    /// Where requests go: an `http://host[:port]/path` URL.
    struct Endpoint: Sendable, Equatable {
        var host: String
        var port: Int
        var path: String
        /// The `Host` header's value.
        var authority: String

        /// Nil for anything but `http` (an `https` receiver goes through AsyncHTTPClient).
        init?(url: String) {
            guard url.lowercased().hasPrefix("http://") else { return nil }
            let rest = url.dropFirst("http://".count)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<slash]
            guard !authority.isEmpty, !authority.contains("@") else { return nil }
            path = slash == rest.endIndex ? "/" : String(rest[slash...])
            self.authority = String(authority)
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { return nil }
                host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.isEmpty {
                    port = 80
                } else {
                    guard after.hasPrefix(":"), let p = Int(after.dropFirst()) else { return nil }
                    port = p
                }
            } else if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
                port = p
            } else {
                host = String(authority)
                port = 80
            }
            guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        }
    }

    let endpoint: Endpoint
    /// A longer response body is not read: the connection is closed after the head.
    static let maxResponseBody: Int64 = 64 * 1024
    /// The request head up to the `Content-Length` value.
    private let headPrefix: [UInt8]
    private let started = NIOLockedValueBox<(reactor: Reactor?, stopped: Bool)>((nil, false))

    // On the reactor only:
    private var connection: Connection?
    private var pending: Pending?
    private var nextID = 0

    private struct Pending {
        let id: Int
        /// Until sent.
        var head: ByteBuffer?
        var body: [ByteBuffer]?
        /// The connection it went out on.
        var sentOn: ObjectIdentifier?
        var inbound: ByteBuffer?
        let done: (Result<Int, Failure>) -> Void
    }

    /// The connection's events, with the connection they are about (a closed connection's
    /// last events can come after the next one is open).
    private final class Link: ConnectionHandler {
        unowned let poster: SpanPoster
        unowned let connection: Connection

        init(poster: SpanPoster, connection: Connection) {
            self.poster = poster
            self.connection = connection
        }

        func connectionRead(_ buffer: ByteBuffer) { poster.read(buffer, on: connection) }
        func connectionReadComplete() {}
        var holdsReads: Bool { false }
        func connectionWritabilityChanged(_ writable: Bool) {}
        func connectionClosed(error: Int32?) { poster.closed(connection, error: error) }
    }

    init(endpoint: Endpoint, contentType: String, userAgent: String) {
        self.endpoint = endpoint
        headPrefix = Array(
            "POST \(endpoint.path) HTTP/1.1\r\nHost: \(endpoint.authority)\r\nUser-Agent: \(userAgent)\r\nContent-Type: \(contentType)\r\nContent-Length: ".utf8)
    }

    /// The poster's reactor (started the first time it is asked for), nil once stopped.
    var reactor: Reactor? {
        started.withLockedValue { state in
            if state.stopped { return nil }
            if let r = state.reactor { return r }
            let new = Reactor.start(count: 1)[0]
            state.reactor = new
            return new
        }
    }

    /// The poster's reactor if it runs (not started by asking).
    var runningReactor: Reactor? { started.withLockedValue { $0.reactor } }

    /// Sends a body, the bytes of `body`'s buffers one after another (written as they are), and
    /// returns the response's status (any status: the caller judges it).
    func post(_ body: [ByteBuffer], timeout: Duration) async -> Result<Int, Failure> {
        guard let reactor else { return .failure(.closed(nil)) }
        return await withCheckedContinuation { done in
            reactor.execute { self.send(body, timeout: timeout) { done.resume(returning: $0) } }
        }
    }

    /// Closes the connection and stops the reactor (if one was started).
    func stop() async {
        let reactor = started.withLockedValue { state in
            defer { state = (nil, true) }
            return state.reactor
        }
        guard let reactor else { return }
        await reactor.submit { self.connection?.close() }
        await reactor.stop()
    }

    // MARK: on the reactor

    /// Sends a body (its buffers one after another) and calls `done` with the response's status
    /// (on the reactor, which this is called on; one request at a time).
    func send(_ body: [ByteBuffer], timeout: Duration, done: @escaping (Result<Int, Failure>) -> Void) {
        guard let reactor = started.withLockedValue({ $0.reactor }) else { return done(.failure(.closed(nil))) }
        assert(reactor.inReactor, "SpanPoster.send off its reactor")
        guard pending == nil else { return done(.failure(.malformed("a request is already in flight"))) }
        nextID += 1
        let id = nextID
        var head = ByteBuffer()
        head.reserveCapacity(headPrefix.count + 24)
        head.writeBytes(headPrefix)
        head.writeString(String(body.reduce(0) { $0 + $1.readableBytes }))
        head.writeStaticString("\r\n\r\n")
        pending = Pending(id: id, head: head, body: body, done: done)
        reactor.schedule(at: .now() + .nanoseconds(timeout.nanoseconds)) { [weak self] in
            guard let self, self.pending?.id == id else { return }
            self.finish(.failure(.timedOut))
            self.dropConnection()
        }
        if let connection, connection.isOpen {
            send(on: connection)
        } else {
            connect(id: id, on: reactor)
        }
    }

    private func connect(id: Int, on reactor: Reactor) {
        let addresses: [SocketAddress4or6]
        if let literal = SocketAddress4or6(numericHost: endpoint.host, port: endpoint.port) {
            addresses = [literal]
        } else {
            // A name is looked up here: this reactor serves nothing but the exporter.
            do {
                addresses = try SocketAddress4or6.resolve(host: endpoint.host, port: endpoint.port)
            } catch {
                return finish(.failure(.connect(error.description)))
            }
        }
        attempt(addresses[...], id: id, on: reactor, lastError: nil)
    }

    private func attempt(_ addresses: ArraySlice<SocketAddress4or6>, id: Int, on reactor: Reactor, lastError: String?) {
        guard pending?.id == id else { return }
        guard let address = addresses.first else {
            return finish(.failure(.connect(lastError ?? "\(endpoint.host) has no address")))
        }
        let rest = addresses.dropFirst()
        switch Sockets.startConnect(to: address) {
        case .failure(let error):
            attempt(rest, id: id, on: reactor, lastError: error.description)
        case .success(let (fd, connected)):
            guard let c = Connection(fd: fd, reactor: reactor) else {
                return attempt(rest, id: id, on: reactor, lastError: "cannot register the socket")
            }
            connection = c
            if connected {
                c.handler = Link(poster: self, connection: c)
                send(on: c)
                return
            }
            c.onConnected = { [weak self, unowned c] error in
                guard let self else { return }
                if let error {
                    c.close()
                    if self.connection === c { self.connection = nil }
                    self.attempt(rest, id: id, on: reactor, lastError: "connect: " + String(cString: strerror(error)))
                } else {
                    c.handler = Link(poster: self, connection: c)
                    if self.pending?.id == id { self.send(on: c) }
                }
            }
        }
    }

    private func send(on c: Connection) {
        guard var p = pending, let head = p.head, let body = p.body else { return }
        // The body is the connection's from now on.
        p.head = nil
        p.body = nil
        p.sentOn = ObjectIdentifier(c)
        pending = p
        c.write(head)
        for part in body where part.readableBytes > 0 { c.write(part) }
        c.flush()
    }

    fileprivate func read(_ buffer: ByteBuffer, on c: Connection) {
        guard connection === c, var p = pending, p.sentOn == ObjectIdentifier(c) else {
            // Bytes nobody asked for: the connection is out of step.
            c.close()
            return
        }
        if let before = p.inbound {
            // A response in more than one read: its bytes in a buffer of their own (appending
            // to the first read's slice would copy the reactor's whole read buffer).
            var joined = ByteBuffer()
            joined.reserveCapacity(before.readableBytes + buffer.readableBytes)
            joined.writeImmutableBuffer(before)
            joined.writeImmutableBuffer(buffer)
            p.inbound = joined
        } else {
            p.inbound = buffer
        }
        pending = p
        parseResponse()
    }

    private func parseResponse() {
        while let inbound = pending?.inbound {
            let parsed = inbound.withUnsafeReadableBytes { HTTPHeadParser.parse($0, kind: .response) }
            switch parsed {
            case .failure(.incomplete):
                return
            case .failure(let failure):
                finish(.failure(.malformed("\(failure)")))
                dropConnection()
                return
            case .success(let head):
                if head.status / 100 == 1 {
                    // An interim response: the final one follows.
                    pending?.inbound?.moveReaderIndex(forwardBy: head.length)
                    continue
                }
                let body = inbound.readableBytes - head.length
                switch head.framing {
                case .none:
                    complete(head.status, reusable: head.keepAlive && body == 0)
                case .contentLength(let n) where n > Self.maxResponseBody:
                    // Not worth reading (the status is all an export needs).
                    complete(head.status, reusable: false)
                case .contentLength(let n):
                    guard body >= n else { return }
                    complete(head.status, reusable: head.keepAlive && body == n)
                case .chunked, .untilClose:
                    complete(head.status, reusable: false)
                }
                return
            }
        }
    }

    private func complete(_ status: Int, reusable: Bool) {
        finish(.success(status))
        // A receiver that answered before it took the whole body leaves the connection out
        // of step.
        if !reusable || (connection?.pendingBytes ?? 0) > 0 { dropConnection() }
    }

    fileprivate func closed(_ c: Connection, error: Int32?) {
        if connection === c { connection = nil }
        if let p = pending, p.sentOn == ObjectIdentifier(c) { finish(.failure(.closed(error))) }
    }

    private func dropConnection() {
        let c = connection
        connection = nil
        c?.close()
    }

    private func finish(_ result: Result<Int, Failure>) {
        guard let p = pending else { return }
        pending = nil
        p.done(result)
    }
}
