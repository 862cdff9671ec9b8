import NIOCore
import TapperCore

/// The handler of an upstream connection: raw bytes both ways.
///
/// Requests go out as bytes the ``ProxyHandler`` already framed. Responses are split with
/// ``HTTPHeadParser`` (strict: a response it cannot frame unambiguously fails the exchange) and
/// their body bytes handed on as slices of the read buffer, chunked framing included and checked
/// by ``ChunkedBodyTracker``. Reads are held while the client cannot take more (backpressure from
/// client to upstream).
final class UpstreamHandler: ConnectionHandler {
    /// `host:port` of the instance, the pool key.
    let poolKey: String
    /// The exchange owner, nil while pooled. Strong, and cleared on every path that detaches the
    /// connection (release to the pool, close, failure): a weak reference gave every
    /// ProxyHandler a side table, which sends all of its retains and releases down the
    /// runtime's slow path (about 850 instructions a request in callgrind).
    var owner: ProxyHandler?
    let connection: Connection
    var isActive: Bool { connection.isOpen }
    /// The pool's idle list for ``poolKey``, once the connection was first released (a pooled
    /// connection the upstream closes takes itself off it).
    var idleList: UpstreamPool.IdleList?
    /// Set by the owner before each request: a response to HEAD has no body.
    var requestIsHEAD = false
    /// Set by the owner before each request: it asks to switch protocols (a `101` may follow).
    var requestIsUpgrade = false
    /// The upstream switched protocols: bytes go to the owner as they are (``ProxyHandler/tunnelFromUpstream(_:)``).
    private(set) var tunnelling = false
    /// The response body being read (complete: the next bytes are a response head).
    private var body = BodyFramer()
    /// Unparsed bytes of a response head that arrived in pieces.
    private var partial: ByteBuffer?
    /// The last response head's header array, reused by the parser (see ProxyHandler's).
    private var headerStorage: [HTTPHeadParser.Header] = []
    /// While a response head is handed on: how many bytes of the same read follow it (the owner
    /// sizes the client buffer so a small body fits behind the head).
    private(set) var bytesAfterHead = 0

    static let limits = HTTPHeadParser.Limits(maxHeadBytes: 64 * 1024, maxTargetBytes: 8 * 1024, maxHeaderCount: 1000)

    init(poolKey: String, connection: Connection) {
        self.poolKey = poolKey
        self.connection = connection
    }

    var isWritable: Bool { connection.isWritable }

    /// Prepares for the next response on this connection.
    func startExchange(isHEAD: Bool, upgrade: Bool = false) {
        requestIsHEAD = isHEAD
        requestIsUpgrade = upgrade
        body = BodyFramer()
        partial = nil
    }

    func send(_ bytes: ByteBuffer) {
        connection.write(bytes)
    }

    func flush() {
        connection.flush()
    }

    func close() {
        connection.close()
    }

    func connectionRead(_ data: ByteBuffer) {
        if tunnelling {
            owner?.tunnelFromUpstream(data)
            return
        }
        var buffer = data
        guard owner != nil else {
            // Data on an idle pooled connection is a protocol error: drop the connection.
            close()
            return
        }
        if var earlier = partial {
            partial = nil
            earlier.writeBuffer(&buffer)
            buffer = earlier
        }
        while buffer.readableBytes > 0, let owner, isActive {
            if body.isComplete {
                let parsed = buffer.withUnsafeReadableBytes {
                    HTTPHeadParser.parse($0, kind: .response, limits: Self.limits, requestMethodWasHEAD: requestIsHEAD, reusing: HTTPHeadParser.take(&self.headerStorage))
                }
                switch parsed {
                case .success(let head):
                    defer { headerStorage = head.headers }
                    let headBytes = buffer.readSlice(length: head.length)!
                    if head.status == 101 {
                        // Switching protocols: only an answer to an upgrade request; what follows
                        // the head is the new protocol's.
                        guard requestIsUpgrade else {
                            fail(owner)
                            return
                        }
                        tunnelling = true
                        connection.halfClose = true
                        owner.upstreamUpgraded(head, headBytes, from: self)
                        if buffer.readableBytes > 0, self.owner === owner, isActive { owner.tunnelFromUpstream(buffer) }
                        return
                    }
                    if head.status < 200 {
                        // 1xx: informational (the gateway answers `Expect` itself); skip it.
                        continue
                    }
                    body = BodyFramer(head.framing)
                    bytesAfterHead = buffer.readableBytes
                    owner.upstreamHead(head, headBytes, from: self)
                    if body.isComplete, self.owner === owner {
                        responseFinished(owner, leftover: buffer.readableBytes)
                        return
                    }
                case .failure(.incomplete):
                    partial = buffer.compacted()
                    return
                case .failure:
                    fail(owner)
                    return
                }
            } else {
                var framer = body
                let step: BodyFramer.Step
                do {
                    step = try buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in try framer.consume(raw) }
                } catch {
                    fail(owner)
                    return
                }
                body = framer
                let slice = buffer.readSlice(length: step.consumed)!
                owner.upstreamBody(slice, from: self)
                if step.ended, self.owner === owner {
                    responseFinished(owner, leftover: buffer.readableBytes)
                    return
                }
            }
        }
    }

    /// A complete response was handed on. Bytes after it (the upstream answered something it was
    /// not asked) make the connection unusable.
    private func responseFinished(_ owner: ProxyHandler, leftover: Int) {
        body = BodyFramer()
        owner.upstreamEnd(from: self)
        if leftover > 0 { close() }
    }

    /// A response that cannot be framed: the exchange fails as if the connection had closed.
    private func fail(_ owner: ProxyHandler) {
        self.owner = nil
        connection.close()
        owner.upstreamClosed(self, error: UpstreamProtocolError())
    }

    func connectionReadComplete() {
        owner?.upstreamReadComplete()
    }

    func connectionClosed(error: Int32?) {
        guard let owner else {
            idleList?.remove(self)
            return
        }
        if tunnelling {
            self.owner = nil
            owner.tunnelUpstreamClosed(error: error)
            return
        }
        if error == nil, body.endsWithConnection {
            // A close-delimited body ends with the connection.
            body = BodyFramer()
            owner.upstreamEnd(from: self)
            self.owner = nil
            return
        }
        self.owner = nil
        owner.upstreamClosed(self, error: error.map { SocketError(operation: "upstream", code: $0) })
    }

    func connectionInputEnded() {
        owner?.tunnelUpstreamInputEnded()
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        if writable { owner?.upstreamBecameWritable() }
    }

    /// Reads wait while the client cannot take more.
    var holdsReads: Bool {
        if let owner { return !owner.downstreamWritable }
        return false
    }

    /// Called when the client became writable again.
    func resumeReads() {
        connection.readIfReady()
    }
}

/// An upstream response the gateway could not frame (malformed head or chunked body).
struct UpstreamProtocolError: Error {}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
