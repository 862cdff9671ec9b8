import CoreMetrics
import NIOCore
import NIOHTTP1
import TapperCore

/// What a graceful shutdown asks of every client connection (``LoopContext/quiesce(drained:)``).
protocol DrainableClient: AnyObject {
    /// Close once the exchanges in flight are done (idle connections close now).
    func quiesce()
    /// The drain timeout ran out: close now.
    func closeNow()
}

/// The I/O shell of one client connection (a ``Connection`` on a ``Reactor``): decodes the
/// client's bytes (``RequestDecoder``), asks ``RequestAdmission`` what each request gets, feeds
/// every event to its ``ProxyConnection/StateMachine`` and runs the actions it returns.
///
/// Bodies pass through as slices of the read buffer; only heads are rewritten
/// (``RequestHeadRewriter``, ``ResponseHeadRewriter``). Client reads are held while the upstream
/// cannot take more (and vice versa in ``UpstreamHandler``), so a 1 GiB upload or download
/// passes with flat memory; pipelined requests wait in the decoder.
final class ProxyHandler: ConnectionHandler, DrainableClient {
    /// What a listener serves: the main one proxies (and `/_tapper/*` unless `--admin-port`
    /// moved it); the admin one only `/health` and `/_tapper/*`.
    enum Role { case main, admin }

    typealias Machine = ProxyConnection.StateMachine

    let gateway: Gateway
    let loop: LoopContext
    let connection: Connection
    private let admission: RequestAdmission
    private let requestHeads: RequestHeadRewriter
    private var machine: Machine
    /// The data of the exchange being proxied (its progress is the machine's).
    private var exchange: Exchange?
    /// The client's bytes, split into heads and body pieces.
    private var decoder: RequestDecoder
    private var processing = false
    /// The connection is a tunnel (``Machine/Phase/tunnelling``): client bytes go to the
    /// upstream as they are.
    private var tunnelling = false
    /// Body bytes were written to the upstream since its last flush.
    private var upstreamFlushPending = false
    /// What goes to the client.
    private var output: ClientOutput
    private let role: Role
    private let peer: SocketAddress4or6
    private let secure: Bool
    /// The first bytes may still turn the connection into HTTP/2 (ALPN h2, or the h2c preface):
    /// false on a stream's virtual connection, the admin port, and with `--no-http2`.
    private var mayBecomeHTTP2: Bool
    /// A real client connection (a stream's virtual one is counted by its ``H2Session``).
    private let countsConnection: Bool

    /// What timers and connect completions hold instead of this handler (a weak reference gives
    /// it a side table: every retain and release takes the slow path). Cleared on close.
    private final class Ref {
        unowned(unsafe) var handler: ProxyHandler?
    }
    private let ref = Ref()

    /// Bytes of request body buffered while no upstream is attached before reads are paused.
    static let pendingBodyLimit = 256 * 1024

    /// - Parameter secure: the connection came to the HTTPS listener (TLS terminated here).
    init(gateway: Gateway, loop: LoopContext, role: Role = .main, connection: Connection, peer: SocketAddress4or6, secure: Bool = false) {
        self.gateway = gateway
        self.loop = loop
        self.connection = connection
        let config = gateway.configuration
        // The head limit leaves room for the longest allowed target on top of the header limit;
        // the header limit itself is checked once the head is parsed (431).
        decoder = RequestDecoder(
            limits: HTTPHeadParser.Limits(
                maxHeadBytes: config.maxHeaderBytes + config.maxURIBytes + 1024, maxTargetBytes: config.maxURIBytes, maxHeaderCount: 1000
            )
        )
        let ip = peer.ipString
        let trusted = !ip.isEmpty && !config.trustedProxies.isEmpty && config.trustedProxies.contains(ip: ip)
        requestHeads = RequestHeadRewriter(peerIP: ip, peerTrusted: trusted, secure: secure)
        admission = RequestAdmission(
            gateway: gateway, admin: AdminDispatch(gateway: gateway, servesAdmin: role == .admin || config.adminPort == nil, servesDocs: role == .main), servesProxy: role == .main,
            peerIP: ip
        )
        machine = Machine(settings: loop.machineSettings, now: loop.reactor.tickTime)
        output = ClientOutput(connection: connection, loop: loop)
        self.role = role
        self.peer = peer
        self.secure = secure
        countsConnection = connection.stream == nil
        mayBecomeHTTP2 = countsConnection && role == .main && config.http2
        ref.handler = self
    }

    deinit { ref.handler = nil }

    var downstreamWritable: Bool { connection.isWritable }

    /// The reactor's tick time (one clock read per epoll_wait): what deadlines count from.
    private var now: NIODeadline { loop.reactor.tickTime }

    // MARK: connection lifecycle

    /// The connection is accepted.
    func start() {
        if countsConnection { gateway.connectionOpened() }
        loop.clientOpened(self)
        armTimer()
    }

    func connectionClosed(error: Int32?) {
        if countsConnection { gateway.connectionClosed() }
        run(machine.clientClosed(error: error != nil))
        decoder.discard()
        ref.handler = nil
        loop.clientClosed(self)
    }

    /// Graceful shutdown: idle connections close now, busy ones after their response.
    func quiesce() { run(machine.quiesce()) }

    /// The drain timeout ran out: close whatever state the connection is in.
    func closeNow() { run(machine.closeNow()) }

    // MARK: running the machine's actions

    private func run(_ action: Machine.Action) {
        switch action {
        case .none, .forwardBody, .bufferBody, .dropBody:
            break  // The body actions run where the bytes are (``requestBody(_:payloadBytes:)``).
        case .rejectAndClose(let error):
            decoder.discard()
            output.writeRejection(error)
        case .close:
            connection.close()
        case .abandon(let outcome, let close):
            abandon(outcome: outcome)
            if close { connection.close() }
        case .respond(let error, let after):
            respond(error, after)
            then(after)
        case .respondLocally(let after), .then(let after):
            then(after)
        case .authenticate:
            authenticate()
        case .connect(let sendContinue):
            if sendContinue, let exchange { output.writeContinue(minor: exchange.clientMinorVersion) }
            if let exchange { connect(exchange, lastInstance: false) }
        case .retry:
            guard let exchange else { break }
            exchange.rewindForRetry()
            connect(exchange, lastInstance: false)
        case .connectLastInstanceFresh:
            if let exchange { connect(exchange, lastInstance: true) }
        case .sendRequest:
            sendRequest()
        case .flushUpstream:
            exchange?.upstream?.flush()
            upstreamFlushPending = false
        case .completeExchange(let release, let after):
            complete(releaseUpstream: release)
            then(after)
        case .closeUpstream:
            exchange?.detachUpstream()?.close()
        case .startTunnel:
            break  // Run where the 101 arrives (``upstreamUpgraded(_:_:from:)``).
        case .shutdownOutput(let toUpstream):
            if toUpstream {
                exchange?.upstream?.connection.shutdownOutput()
            } else {
                output.flush()
                connection.shutdownOutput()
            }
        case .endTunnel(let outcome):
            endTunnel(outcome: outcome)
        }
        armTimer()
    }

    private func then(_ after: Machine.After) {
        switch after {
        case .readNext:
            // Pipelined bytes first; a running ``process()`` loop picks up the new state itself.
            process()
            resumeClientReads()
        case .discardBody:
            break
        case .closeAfterFlush:
            decoder.discard()
            connection.closeAfterFlush()
        }
    }

    /// Schedules a timer task only when the machine asks for one: moving the deadline later
    /// (the common case, on every request) costs no scheduling at all.
    private func armTimer() {
        guard let fireAt = machine.timerToSchedule() else { return }
        let ref = self.ref
        loop.reactor.schedule(at: fireAt) {
            ref.handler?.timerFired(scheduled: fireAt)
        }
    }

    private func timerFired(scheduled: NIODeadline) {
        run(machine.timerFired(scheduled: scheduled, now: NIODeadline.now()))
    }

    // MARK: backpressure

    /// Whether client reads must wait: a pipelined head waits for the current exchange, and a
    /// body waits for an upstream that can take it.
    var holdsReads: Bool {
        switch machine.phase {
        case .proxying:
            if decoder.holdsHead { return true }
            guard let exchange else { return false }
            if let upstream = exchange.upstream { return !upstream.isWritable }
            return exchange.pendingBytes > Self.pendingBodyLimit
        case .tunnelling:
            return !(exchange?.upstream?.isWritable ?? true)
        case .discarding:
            return decoder.holdsHead
        case .idle, .closed:
            return false
        }
    }

    private func resumeClientReads() {
        if !holdsReads { connection.readIfReady() }
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        if writable { exchange?.upstream?.resumeReads() }
    }

    func upstreamBecameWritable() { resumeClientReads() }

    // MARK: client → gateway

    func connectionRead(_ data: ByteBuffer) {
        guard machine.isOpen else { return }
        if mayBecomeHTTP2 {
            mayBecomeHTTP2 = false
            if connection.tls?.negotiatedH2 ?? Self.startsWithH2Preface(data) { return becomeHTTP2(data) }
        }
        if tunnelling { return tunnelFromClient(data) }
        decoder.append(data)
        process()
    }

    /// Works through the client's bytes: heads start exchanges (one at a time), body bytes go
    /// to the current exchange. Re-entrant calls (an exchange finishing while the loop runs)
    /// return at once; the running loop picks up the new state.
    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while machine.isOpen, let event = decoder.next(headsAllowed: machine.acceptsHead) {
            switch event {
            case .head(let head, let headBytes):
                startRequest(head, headBytes)
                decoder.recycle(head.headers)
            case .body(let slice, let payloadBytes, let ended):
                if slice.readableBytes > 0 { requestBody(slice, payloadBytes: payloadBytes) }
                if ended { run(machine.requestEnd(now: now)) }
            case .headIncomplete:
                machine.headIncomplete(now: now)
                armTimer()
                return
            case .headFailed(let failure):
                run(machine.headFailed(.parsing(failure, limits: decoder.limits)))
                return
            case .bodyFailed:
                run(machine.requestFramingFailed(now: now))
                return
            }
        }
    }

    private func requestBody(_ slice: ByteBuffer, payloadBytes: Int) {
        let action = machine.requestBody(payloadBytes: payloadBytes, now: now)
        switch action {
        case .forwardBody:
            guard let exchange, let upstream = exchange.upstream else { return }
            exchange.keepForReplay(slice)
            upstream.send(slice)
            upstreamFlushPending = true
        case .bufferBody:
            guard let exchange else { return }
            exchange.keepForReplay(slice)
            exchange.pending.append(slice.compacted())
            exchange.pendingBytes += slice.readableBytes
        case .dropBody:
            break
        default:
            run(action)
        }
    }

    func connectionReadComplete() {
        if upstreamFlushPending, let upstream = exchange?.upstream {
            upstreamFlushPending = false
            upstream.flush()
        }
    }

    private func startRequest(_ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer) {
        guard case .idle = machine.phase else { return }
        let started = NIODeadline.now()
        _ = machine.headReceived(bodyFollows: decoder.readingBody, keepAlive: head.keepAlive, now: started)
        let tracing = gateway.configuration.tracing
        let request = RequestAdmission.Request(head, headBytes, versionHeader: gateway.configuration.versionHeader, tracing: tracing != nil)
        let (requestID, newTraceID) = loop.requestID(request, tracing: tracing != nil)

        switch admission.decide(head, headBytes, request, bodyFollows: decoder.readingBody, snapshot: loop.routing(gateway.state), now: started, loop: loop) {
        case .answer(let error, let close):
            answerLocally(ClientOutput.Response(error), close: close, request: request, minor: head.versionMinor, requestID: requestID, started: started)
        case .admin(let reply):
            answerLocally(reply, close: false, request: request, minor: head.versionMinor, requestID: requestID, started: started)
        case .proxy(let route):
            // A deferred decision builds the head once it knows the subject.
            let upgrade = head.connectionUpgrade && RequestHeadRewriter.upgradeTunnelled(head, headBytes)
            let (trace, traceHost) = tracing.map { loop.startTrace(request, headBytes: headBytes, sampler: $0.sampler, newTraceID: newTraceID) } ?? (nil, nil)
            let upstreamHead =
                route.deferredAuth == nil
                ? requestHeads.rewrite(
                    head, headBytes, target: route.upstreamTarget, requestID: requestID, subject: route.subject, upgrade: upgrade,
                    traceParent: trace?.context, traceIDIsRequestID: trace?.traceIDIsRequestID ?? false, heads: &loop.heads
                )
                : ByteBuffer()
            let exchange = Exchange(
                requestHead: upstreamHead, clientMinorVersion: head.versionMinor, method: request.method, requestID: requestID, started: started,
                path: String(request.path), route: route, retryBufferBytes: gateway.configuration.retryBufferBytes, upgrade: upgrade, trace: trace,
                traceHost: traceHost
            )
            exchange.snapshotGeneration = loop.snapshotGeneration
            if route.deferredAuth != nil { exchange.deferred = Exchange.Deferred(head: head, headBytes: headBytes) }
            self.exchange = exchange
            gateway.requestStarted()
            let idempotent = RetryPolicy.isIdempotent(request.method)
            run(
                machine.startProxying(
                    idempotent: idempotent, expectContinue: head.expectContinue, authDeferred: route.deferredAuth != nil, upgrade: upgrade, now: started
                ))
        }
    }

    /// Sends a complete gateway-generated response for a request that is not proxied.
    private func answerLocally(
        _ response: ClientOutput.Response, close: Bool, request: RequestAdmission.Request, minor: Int, requestID: String, started: NIODeadline
    ) {
        let action = machine.answeredLocally(close: close, now: now)
        guard case .respondLocally(let after) = action else { return run(action) }
        output.write(response, minor: minor, requestID: requestID, close: after == .closeAfterFlush, omitBody: request.method == "HEAD")
        loop.localResponse(method: request.method, path: request.uri, status: Int(response.status.code), requestID: requestID, started: started)
        run(action)
    }

    /// Runs a provider that could not decide at once; the exchange waits (body buffered, reads
    /// held past ``pendingBodyLimit``) and then connects, or is answered with the refusal.
    private func authenticate() {
        guard let auth = gateway.configuration.auth, let exchange, let request = exchange.route.deferredAuth else { return }
        auth.decideLater(request, on: loop.reactor) { [self] decision in authDecided(decision, exchange) }
    }

    private func authDecided(_ decision: AuthDecision, _ decided: Exchange) {
        guard let exchange, exchange === decided else { return }
        var refusal: AuthFailure? = nil
        switch decision {
        case .allow(let subject): exchange.buildDeferredHead(subject: subject, with: requestHeads, heads: &loop.heads)
        case .deny(let failure): refusal = failure
        }
        run(machine.authDecided(refusal: refusal, now: now))
    }

    // MARK: upstream connection

    /// Starts an attempt (`lastInstance`: on the instance tried last, with a fresh connection).
    private func connect(_ exchange: Exchange, lastInstance: Bool) {
        switch loop.startAttempt(exchange, lastInstance: lastInstance) {
        case .noInstanceLeft:
            run(machine.noInstanceLeft(service: exchange.service, now: now))
        case .pooled:
            run(machine.connecting(pooled: true, now: now))
        case .needsConnection(let target):
            _ = machine.connecting(pooled: false, now: now)
            let ref = self.ref
            let completion: (Result<UpstreamHandler, UpstreamConnectError>) -> Void = { result in
                guard let self = ref.handler, self.exchange === exchange else {
                    if case .success(let h) = result { ref.handler?.loop.pool.release(h) ?? h.close() }
                    return
                }
                switch result {
                case .success(let handler):
                    exchange.upstream = handler
                    self.run(self.machine.upstreamConnected(now: self.now))
                case .failure(let error):
                    self.loop.noteOutcome(target: target, success: false)
                    self.loop.attemptFinished(exchange)
                    self.run(self.machine.connectFailed(timedOut: error.isTimeout, canReplay: exchange.canReplay, now: self.now))
                }
            }
            if exchange.usesHTTP2(target) {
                loop.pool.connectH2(host: target.url.connectHost, port: target.url.port, key: target.poolKey, completion: completion)
            } else {
                loop.pool.connect(host: target.url.connectHost, port: target.url.port, key: target.address, completion: completion)
            }
        }
    }

    /// The upstream connection is attached: the request head and the body so far go out at the
    /// end of this tick, with the other requests of the tick.
    private func sendRequest() {
        guard let exchange, let upstream = exchange.upstream else { return }
        upstream.owner = self
        exchange.sendRequest(on: upstream)
        loop.flushAtEndOfTick(upstream)
        upstreamFlushPending = false
        resumeClientReads()
    }

    // MARK: upstream → client

    /// A response head (never 1xx) from the upstream of the current exchange.
    func upstreamHead(_ head: HTTPHeadParser.Head, _ bytes: ByteBuffer, from upstream: UpstreamHandler) {
        guard let exchange, exchange.upstream === upstream else { return }
        let plan = ResponseHeadRewriter.plan(framing: head.framing, clientMinorVersion: exchange.clientMinorVersion)
        machine.upstreamHead(keepAlive: head.keepAlive, closesClient: plan.closesClient, now: now)
        exchange.status = head.status
        exchange.responseMode = plan.mode
        // Room for a small body too: it usually arrives in the same read and then goes out in the
        // same write (see ``ClientOutput``).
        let clientHead = ResponseHeadRewriter.rewrite(
            head, bytes, plan: plan, clientMinorVersion: exchange.clientMinorVersion, requestID: exchange.requestID,
            instance: gateway.configuration.exposeInstanceHeader ? exchange.target : nil, keepAlive: machine.exchange.keepAlive,
            bodyRoom: min(upstream.bytesAfterHead, ClientOutput.coalesceBodyBytes), heads: &loop.heads
        )
        output.startResponse(head: clientHead)
        armTimer()
    }

    /// Body bytes of the current response: raw, with the upstream's framing.
    func upstreamBody(_ buffer: ByteBuffer, from upstream: UpstreamHandler) {
        guard let exchange, exchange.upstream === upstream else { return }
        // A head held back was sent in this same read, and set the deadline already.
        if !output.holdsHead { machine.upstreamBody(now: now) }
        guard buffer.readableBytes > 0 else { return }
        exchange.responseBytes += buffer.readableBytes
        output.body(buffer, mode: &exchange.responseMode)
    }

    /// The current response is complete.
    func upstreamEnd(from upstream: UpstreamHandler) {
        guard let exchange, exchange.upstream === upstream else { return }
        output.endResponse(mode: exchange.responseMode)
        loop.noteOutcome(target: exchange.target, success: exchange.status < 500)
        run(machine.upstreamEnd(now: now))
    }

    func upstreamReadComplete() { output.upstreamReadComplete() }

    /// The upstream connection closed (or sent what cannot be framed) before the response ended.
    func upstreamClosed(_ upstream: UpstreamHandler, error: (any Error)?) {
        guard let exchange, exchange.upstream === upstream else { return }
        exchange.upstream = nil
        let action = machine.upstreamClosed(canReplay: exchange.canReplay, now: now)
        if action != .none {
            loop.noteOutcome(target: exchange.target, success: false)
            loop.attemptFinished(exchange)
        }
        run(action)
    }

    // MARK: HTTP/2

    /// The h2c connection preface's first line ("PRI * HTTP/2.0"): no HTTP/1.1 request starts so.
    private static func startsWithH2Preface(_ data: ByteBuffer) -> Bool {
        data.readableBytesView.starts(with: "PRI * HTTP/2.0\r\n".utf8)
    }

    /// Hands the connection to an ``H2Session``, which serves each stream with a handler of
    /// its own; this one steps aside.
    private func becomeHTTP2(_ data: ByteBuffer) {
        decoder.discard()
        ref.handler = nil
        gateway.connectionClosed()
        loop.clientClosed(self)
        let session = H2Session(gateway: gateway, loop: loop, role: role, connection: connection, peer: peer, secure: secure)
        connection.handler = session
        session.start(initial: data)
    }

    // MARK: tunnels (upgraded connections)

    /// The upstream answered the upgrade request with `101`: the head goes to the client, and
    /// from here on bytes are relayed both ways as they are.
    func upstreamUpgraded(_ head: HTTPHeadParser.Head, _ bytes: ByteBuffer, from upstream: UpstreamHandler) {
        guard let exchange, exchange.upstream === upstream else { return }
        let action = machine.upstreamUpgraded(now: now)
        guard action == .startTunnel else { return run(action) }
        exchange.status = 101
        exchange.outcome = "ok"
        exchange.becameTunnel()
        loop.noteOutcome(target: exchange.target, success: true)
        let clientHead = ResponseHeadRewriter.rewrite(
            head, bytes, plan: ResponseHeadRewriter.Plan(), clientMinorVersion: 1, requestID: exchange.requestID,
            instance: gateway.configuration.exposeInstanceHeader ? exchange.target : nil, keepAlive: true, upgrade: true, bodyRoom: 0,
            heads: &loop.heads
        )
        output.startResponse(head: clientHead)
        output.flush()
        tunnelling = true
        connection.halfClose = true
        gateway.tunnelOpened()
        // Bytes the client sent behind its upgrade request belong to the new protocol.
        if let early = decoder.takeAll() { tunnelFromClient(early) }
        armTimer()
        resumeClientReads()
    }

    private func tunnelFromClient(_ data: ByteBuffer) {
        guard let exchange, let upstream = exchange.upstream else { return }
        machine.tunnelActivity(now: now)
        exchange.tunnelBytesIn += data.readableBytes
        gateway.metrics.tunnelBytesFromClients.increment(by: Int64(data.readableBytes))
        upstream.send(data)
        upstreamFlushPending = true
    }

    /// Bytes from the upstream of a tunnel (flushed once its read event is done).
    func tunnelFromUpstream(_ data: ByteBuffer) {
        guard let exchange else { return }
        machine.tunnelActivity(now: now)
        exchange.responseBytes += data.readableBytes
        gateway.metrics.tunnelBytesFromUpstreams.increment(by: Int64(data.readableBytes))
        output.tunnel(data)
    }

    /// The client ended its output (half-close): the upstream's output ends in turn.
    func connectionInputEnded() {
        connectionReadComplete()
        run(machine.tunnelInputEnded(fromClient: true))
    }

    func tunnelUpstreamInputEnded() {
        output.flush()
        run(machine.tunnelInputEnded(fromClient: false))
    }

    func tunnelUpstreamClosed(error: Int32?) {
        exchange?.upstream = nil
        run(machine.tunnelUpstreamClosed(error: error != nil))
    }

    /// The tunnel is over: both connections close once what is queued for them is sent.
    private func endTunnel(outcome: String) {
        tunnelling = false
        gateway.tunnelClosed()
        if let exchange = takeExchange() {
            exchange.outcome = outcome
            if let upstream = exchange.detachUpstream() { upstream.connection.closeAfterFlush() }
            loop.finish(exchange)
        }
        output.flush()
        connection.closeAfterFlush()
    }

    // MARK: finishing

    /// Takes the exchange off the connection: it is over, one way or another.
    private func takeExchange() -> Exchange? {
        defer { exchange = nil }
        return exchange
    }

    private func complete(releaseUpstream: Bool) {
        guard let exchange = takeExchange() else { return }
        loop.finish(exchange, releasingUpstream: releaseUpstream)
    }

    /// Drops an exchange that cannot complete (client gone, stream cut).
    private func abandon(outcome: String) {
        guard let exchange = takeExchange() else { return }
        output.dropPendingHead()
        exchange.outcome = outcome
        loop.finish(exchange)
    }

    /// Answers the current exchange with a gateway error (nothing was sent to the client yet).
    private func respond(_ error: GatewayError, _ after: Machine.After) {
        guard let exchange = takeExchange() else { return }
        exchange.status = Int(error.status.code)
        exchange.outcome = error.code
        if error.blamesUpstream { loop.noteOutcome(target: exchange.target, success: false) }
        loop.finish(exchange)
        output.write(ClientOutput.Response(error), minor: exchange.clientMinorVersion, requestID: exchange.requestID, close: after == .closeAfterFlush, omitBody: exchange.isHEAD)
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}
