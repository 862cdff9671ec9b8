import NIOCore
import NIOHTTP1
import TapperCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One client connection (a ``Connection`` on a ``Reactor``), on raw bytes: parses each request
/// head with ``HTTPHeadParser``, routes it, forwards it (head rewritten, body bytes passed through
/// as slices of the read buffer) to an upstream connection of the same reactor, and passes the
/// response back the same way.
///
/// There is no NIOHTTP1 codec on either side: decoding every header into `HTTPHeaders` and
/// encoding it again cost most of the CPU per proxied request. Bodies keep their framing
/// (Content-Length slices, or chunked bytes checked by ``ChunkedBodyTracker``); only the head is
/// rebuilt, with the changes DESIGN.md's Proxying section asks for.
///
/// Reads from the client are held while the upstream cannot take more (and vice versa in
/// ``UpstreamHandler``), so a 1 GiB upload or download passes with flat memory. Pipelined
/// requests wait, unparsed, in the read buffer until the current exchange is done. One lazily
/// rescheduled timer per connection enforces the header-read, idle and upstream timeouts.
final class ProxyHandler: ConnectionHandler {
    enum State {
        /// Waiting for a request head.
        case idle
        /// A gateway-generated response was sent; the rest of the request body is discarded.
        case discarding(closeAfter: Bool)
        /// Proxying the current exchange.
        case proxying(Exchange)
        case closed
    }

    /// What the next client bytes are.
    enum RequestBody {
        /// A request head (no body is being read).
        case none
        case length(remaining: Int64)
        case chunked(ChunkedBodyTracker)
    }

    /// What a listener serves: the main one proxies (and serves `/_tapper/*` unless
    /// `--admin-port` moved it); the admin one serves only `/health` and `/_tapper/*`.
    enum Role {
        case main
        case admin
    }

    let gateway: Gateway
    let loop: LoopContext
    let limits: HTTPHeadParser.Limits
    let servesAdmin: Bool
    let servesProxy: Bool
    let connection: Connection
    private let allocator = ByteBufferAllocator()
    private(set) var state: State = .idle
    private var body = RequestBody.none
    /// Client bytes not processed yet (a partial head, or pipelined requests).
    private var inbound: ByteBuffer?
    private var processing = false
    private var headStarted = false
    private var peerIP = ""
    /// Whether the peer is a trusted proxy (`--trusted-proxies`): only then are its
    /// `X-Forwarded-*` values kept; anyone else's are replaced by what the gateway sees.
    private var peerTrusted = false
    private var deadline = NIODeadline.distantFuture
    /// When the pending timer task fires; nil when none is scheduled.
    private var scheduledFor: NIODeadline?
    private var quiescing = false
    /// Body bytes were written to the upstream since its last flush.
    private var upstreamFlushPending = false
    /// Bytes were written to the client since its last flush.
    private var clientFlushPending = false
    /// The current response's head, held back until the body bytes of the same upstream read
    /// can join it; sent by ``writeToClient(_:)`` or ``flushClient()``.
    private var pendingClientHead: ByteBuffer?

    /// The last request head's header array, handed back to the parser for the next head (it
    /// is unique again once that head is gone, so parsing allocates nothing).
    private var headerStorage: [HTTPHeadParser.Header] = []

    /// What timer tasks and connect completions hold instead of this handler: a weak
    /// reference would give the handler a side table, and then every retain and release of it
    /// takes the runtime's slow path. Cleared when the connection closes.
    private final class Ref {
        unowned(unsafe) var handler: ProxyHandler?
    }
    private let ref = Ref()

    /// Bytes of request body buffered while no upstream is attached before reads are paused.
    static let pendingBodyLimit = 256 * 1024

    init(gateway: Gateway, loop: LoopContext, role: Role = .main, connection: Connection, peer: SocketAddress4or6) {
        self.gateway = gateway
        self.loop = loop
        self.connection = connection
        let config = gateway.configuration
        servesProxy = role == .main
        servesAdmin = role == .admin || config.adminPort == nil
        // The head limit leaves room for the longest allowed target on top of the header limit;
        // the header limit itself is checked once the head is parsed (431).
        limits = HTTPHeadParser.Limits(
            maxHeadBytes: config.maxHeaderBytes + config.maxURIBytes + 1024, maxTargetBytes: config.maxURIBytes, maxHeaderCount: 1000
        )
        let ip = peer.ipString
        peerIP = ip
        peerTrusted = !ip.isEmpty && !config.trustedProxies.isEmpty && config.trustedProxies.contains(ip: ip)
        ref.handler = self
    }

    deinit {
        ref.handler = nil
    }

    var downstreamWritable: Bool { connection.isWritable }

    // MARK: connection lifecycle

    /// The connection is accepted and this handler is its handler.
    func start() {
        gateway.connectionOpened()
        loop.clientOpened(self)
        setDeadline(gateway.timeouts.headerRead)
    }

    func connectionClosed(error: Int32?) {
        gateway.connectionClosed()
        if case .proxying(let exchange) = state {
            abandon(exchange, outcome: error == nil ? "client_closed" : "client_error")
        }
        state = .closed
        inbound = nil
        ref.handler = nil
        loop.clientClosed(self)
    }

    /// Graceful shutdown: idle connections close now, busy ones after their response.
    func quiesce() {
        quiescing = true
        switch state {
        case .idle:
            state = .closed
            connection.close()
        case .proxying(let exchange):
            if !exchange.responseStarted { exchange.keepAlive = false }
        case .discarding:
            state = .discarding(closeAfter: true)
        case .closed:
            break
        }
    }

    /// The drain timeout ran out: close whatever state the connection is in.
    func closeNow() {
        if case .proxying(let exchange) = state { abandon(exchange, outcome: "shutdown") }
        state = .closed
        connection.close()
    }

    // MARK: timer

    /// Moves the deadline to `d` after `now` (default: the reactor's tick time, see
    /// ``Reactor/tickTime``).
    private func setDeadline(_ d: TimeAmount, from now: NIODeadline? = nil) {
        deadline = (now ?? loop.reactor.tickTime) + d
        armTimer()
    }

    /// Schedules a timer task only when none is pending at or before the deadline: moving the
    /// deadline later (the common case, on every request) costs no scheduling at all.
    private func armTimer() {
        guard state.isOpen else { return }
        if let pending = scheduledFor, pending <= deadline { return }
        let fireAt = deadline
        scheduledFor = fireAt
        let ref = self.ref
        loop.reactor.schedule(at: fireAt) {
            ref.handler?.timerFired(scheduled: fireAt)
        }
    }

    private func timerFired(scheduled: NIODeadline) {
        // A later task replaced this one when the deadline moved earlier.
        guard scheduledFor == scheduled else { return }
        scheduledFor = nil
        guard state.isOpen else { return }
        let now = NIODeadline.now()
        if now < deadline {
            armTimer()
            return
        }
        switch state {
        case .idle, .discarding:
            state = .closed
            if headStarted {
                rejectAndClose(status: .requestTimeout, code: "request_timeout", message: "the request head was not received in time")
            } else {
                connection.close()
            }
        case .proxying(let exchange):
            if exchange.authPending {
                respondError(
                    exchange, status: .gatewayTimeout, code: "auth_timeout", message: "the authentication provider did not answer in time",
                    close: !exchange.requestComplete
                )
            } else if exchange.responseStarted || !exchange.requestComplete {
                // Stalled stream, or a client that stopped sending its body: cut it.
                abandon(exchange, outcome: exchange.responseStarted ? "upstream_stalled" : "client_timeout")
                state = .closed
                connection.close()
            } else {
                exchange.upstream?.owner = nil
                exchange.upstream?.close()
                exchange.upstream = nil
                gateway.noteOutcome(target: exchange.target, success: false)
                respondError(exchange, status: .gatewayTimeout, code: "upstream_timeout", message: "the upstream instance did not answer in time")
            }
        case .closed:
            break
        }
    }

    // MARK: backpressure

    /// Whether client reads must wait: a pipelined head waits for the current exchange, and a
    /// body waits for an upstream that can take it.
    private var shouldHoldReads: Bool {
        switch state {
        case .proxying(let exchange):
            if inbound != nil, case .none = body { return true }
            if let upstream = exchange.upstream { return !upstream.isWritable }
            return exchange.pendingBytes > Self.pendingBodyLimit
        case .discarding:
            if inbound != nil, case .none = body { return true }
            return false
        case .idle, .closed:
            return false
        }
    }

    var holdsReads: Bool { shouldHoldReads }

    private func resumeClientReads() {
        if !shouldHoldReads { connection.readIfReady() }
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        if writable, case .proxying(let exchange) = state {
            exchange.upstream?.resumeReads()
        }
    }

    func upstreamBecameWritable() {
        resumeClientReads()
    }

    // MARK: client → gateway

    func connectionRead(_ data: ByteBuffer) {
        var buffer = data
        guard state.isOpen else { return }
        if var earlier = inbound {
            inbound = nil
            earlier.writeBuffer(&buffer)
            inbound = earlier
        } else {
            inbound = buffer
        }
        process()
    }

    /// Works through the unprocessed client bytes: heads start exchanges (one at a time), body
    /// bytes go to the current exchange. Re-entrant calls (an exchange finishing while the loop
    /// runs) return at once; the running loop picks up the new state.
    private func process() {
        guard !processing else { return }
        processing = true
        defer { processing = false }
        while state.isOpen, var buffer = inbound {
            guard buffer.readableBytes > 0 else {
                inbound = nil
                break
            }
            switch body {
            case .none:
                guard case .idle = state else { return }
                let limits = self.limits
                let parsed = buffer.withUnsafeReadableBytes {
                    HTTPHeadParser.parse($0, kind: .request, limits: limits, reusing: HTTPHeadParser.take(&self.headerStorage))
                }
                switch parsed {
                case .success(let head):
                    let headBytes = buffer.readSlice(length: head.length)!
                    inbound = buffer.readableBytes > 0 ? buffer : nil
                    startRequest(head, headBytes)
                    headerStorage = head.headers
                case .failure(.incomplete):
                    inbound = buffer.compacted()
                    // A head has started: it must now arrive within the header-read timeout.
                    if !headStarted {
                        headStarted = true
                        setDeadline(gateway.timeouts.headerRead)
                    }
                    return
                case .failure(let failure):
                    inbound = nil
                    state = .closed
                    switch failure {
                    case .headTooLarge:
                        rejectAndClose(status: .requestHeaderFieldsTooLarge, code: "headers_too_large", message: "the request head is too large")
                    case .targetTooLong:
                        rejectAndClose(status: .uriTooLong, code: "uri_too_long", message: "the request target is longer than \(limits.maxTargetBytes) bytes")
                    case .unsupportedTransferEncoding:
                        rejectAndClose(status: .notImplemented, code: "unsupported_transfer_encoding", message: "only the chunked transfer coding is supported")
                    case .malformed(let reason):
                        rejectAndClose(status: .badRequest, code: "bad_request", message: "malformed HTTP request: \(reason)")
                    case .incomplete:
                        break
                    }
                    return
                }
            case .length(let remaining):
                let n = Int(min(Int64(buffer.readableBytes), remaining))
                let slice = buffer.readSlice(length: n)!
                inbound = buffer.readableBytes > 0 ? buffer : nil
                let ended = remaining == Int64(n)
                body = ended ? .none : .length(remaining: remaining - Int64(n))
                requestBody(slice, payloadBytes: n, ended: ended)
            case .chunked(var tracker):
                let before = tracker.payloadBytes
                let consumed: Int
                do {
                    consumed = try buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in try tracker.consume(raw) }
                } catch {
                    body = .none
                    inbound = nil
                    requestFramingFailed()
                    return
                }
                let slice = buffer.readSlice(length: consumed)!
                inbound = buffer.readableBytes > 0 ? buffer : nil
                body = tracker.isComplete ? .none : .chunked(tracker)
                requestBody(slice, payloadBytes: Int(tracker.payloadBytes - before), ended: tracker.isComplete)
            }
        }
    }

    private func requestBody(_ slice: ByteBuffer, payloadBytes: Int, ended: Bool) {
        switch state {
        case .proxying(let exchange):
            if slice.readableBytes > 0 { clientBody(slice, payloadBytes: payloadBytes, exchange) }
            if ended, case .proxying(let current) = state, current === exchange { clientEnd(exchange) }
        case .discarding(let closeAfter):
            guard ended else { return }
            if closeAfter {
                state = .closed
                connection.closeAfterFlush()
            } else {
                finishedRequest()
            }
        case .idle, .closed:
            break
        }
    }

    /// A chunked request body that breaks the framing rules.
    private func requestFramingFailed() {
        switch state {
        case .proxying(let exchange) where !exchange.responseStarted:
            exchange.upstream?.owner = nil
            exchange.upstream?.close()
            exchange.upstream = nil
            respondError(exchange, status: .badRequest, code: "bad_request", message: "malformed chunked request body", close: true)
        case .proxying(let exchange):
            abandon(exchange, outcome: "client_error")
            state = .closed
            connection.close()
        case .idle, .discarding, .closed:
            state = .closed
            connection.close()
        }
    }

    func connectionReadComplete() {
        if upstreamFlushPending, case .proxying(let exchange) = state, let upstream = exchange.upstream {
            upstreamFlushPending = false
            upstream.flush()
        }
    }

    private func startRequest(_ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer) {
        guard case .idle = state else { return }
        headStarted = false
        let started = NIODeadline.now()
        setDeadline(gateway.timeouts.idle, from: started)
        switch head.framing {
        case .contentLength(let n): body = .length(remaining: n)
        case .chunked: body = .chunked(ChunkedBodyTracker())
        case .none, .untilClose: body = .none
        }
        let minor = head.versionMinor
        let keepAlive = head.keepAlive && !quiescing

        // The strings the routing and logging need; the rest stays as offsets into the head.
        var method = ""
        var uri = ""
        var clientRequestID = ""
        var authorization: String? = nil
        /// Where the query starts in the target, in bytes (`memchr`: the generic search over
        /// `String.UTF8View` cost more per request).
        var queryOffset = -1
        headBytes.withUnsafeReadableBytes { raw in
            method = String(decoding: UnsafeRawBufferPointer(rebasing: raw[head.method]), as: UTF8.self)
            let target = UnsafeRawBufferPointer(rebasing: raw[head.target])
            uri = String(decoding: target, as: UTF8.self)
            if let base = target.baseAddress, let q = memchr(base, Int32(UInt8(ascii: "?")), target.count) {
                queryOffset = base.distance(to: UnsafeRawPointer(q))
            }
            for h in head.headers where raw.equalsIgnoringCase(h.name, "x-request-id") {
                clientRequestID = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                break
            }
            // Only the admin endpoints look at credentials; proxied requests pass them on untouched.
            if raw.count > head.target.lowerBound + 8, raw[head.target.lowerBound + 1] == UInt8(ascii: "_") {
                for h in head.headers where raw.equalsIgnoringCase(h.name, "authorization") {
                    authorization = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                    break
                }
            }
        }
        // A constant: the deferred-auth closure below captures it, and a captured `var` is a
        // heap box allocated on every request.
        let requestID = HeaderRules.acceptableRequestID(clientRequestID) ? clientRequestID : loop.requestIDs.make()

        func local(_ status: HTTPResponseStatus, _ code: String, _ message: String, headers: [(String, String)] = [], close: Bool = false) {
            respondLocal(
                status: status, body: GatewayErrors.body(code: code, message: message), contentType: "application/json",
                method: method, uri: uri, minor: minor, requestID: requestID, extraHeaders: headers, close: close || !keepAlive, started: started
            )
        }

        // Size checks (the target's own limit is the parser's: 414).
        if head.length - head.target.count > gateway.configuration.maxHeaderBytes {
            return local(.requestHeaderFieldsTooLarge, "headers_too_large", "the request head is larger than \(gateway.configuration.maxHeaderBytes) bytes", close: true)
        }
        if case .contentLength(let n) = head.framing, n > gateway.configuration.maxBodyBytes {
            return local(.payloadTooLarge, "too_large", "the request body is larger than \(gateway.configuration.maxBodyBytes) bytes", close: true)
        }

        // Path.
        guard uri.utf8.first == UInt8(ascii: "/") else {
            return local(.badRequest, "bad_target", "only origin-form request targets ('/path?query') are supported", close: true)
        }
        let path = queryOffset >= 0 ? uri[..<uri.utf8.index(uri.utf8.startIndex, offsetBy: queryOffset)] : Substring(uri)
        if let violation = PathSafety.check(path) {
            return local(.badRequest, "bad_path", violation.rawValue)
        }

        // The gateway's own endpoints (`/_tapper/*` only where this listener serves them).
        // (The byte test first: Substring's generic hasPrefix cost more than routing.)
        if Self.mayBeAdminPath(path), path == "/health" || (servesAdmin && path.hasPrefix("/_tapper/")) {
            if path != "/health", let expected = gateway.configuration.adminToken() {
                let presented = authorization.flatMap(BearerToken.parse)
                guard let presented, BearerToken.constantTimeEqual(presented, expected) else {
                    return local(
                        .unauthorized, "unauthorized",
                        presented == nil ? "the gateway's admin endpoints need a bearer token" : "the bearer token is not valid",
                        headers: [("WWW-Authenticate", #"Bearer realm="tapper-admin""#)]
                    )
                }
            }
            let reply = gateway.admin.respond(method: HTTPMethod(rawValue: method), path: path, query: uri[path.endIndex...])
            return respondLocal(
                status: reply.status, body: reply.body, contentType: reply.contentType, method: method, uri: uri, minor: minor,
                requestID: requestID, extraHeaders: reply.headers, close: !keepAlive, started: started
            )
        }

        guard servesProxy else {
            return local(.notFound, "not_found", "the admin listener serves only /health and /_tapper/*")
        }

        // Routing.
        let snapshot = loop.routing(gateway.state)
        switch snapshot.table.resolveEntry(method: method, path: path) {
        case .notFound:
            return local(.notFound, "not_found", "no service has a route for \(method) \(String(path))")
        case .methodNotAllowed(let allowed):
            return local(.methodNotAllowed, "method_not_allowed", "\(method) is not allowed here; allowed: \(allowed.joined(separator: ", "))", headers: [("Allow", allowed.joined(separator: ", "))])
        case .matched(let entryIndex):
            // The entry's fields are read in place: copying the entry retained its arrays.
            let service = snapshot.table.entries[entryIndex].service
            let routeTemplate = snapshot.table.entries[entryIndex].template.raw
            let prefixSegments = snapshot.table.entries[entryIndex].prefixSegments
            // Authentication (routes registered as public, and /health above, skip it).
            var subject: String? = nil
            var deferredAuth: AuthRequest? = nil
            if let auth = gateway.configuration.auth, !snapshot.table.entries[entryIndex].isPublic {
                let request = AuthRequest(
                    method: method, target: uri, path: String(path), peerAddress: peerIP, service: service, routeTemplate: routeTemplate,
                    headBytes: headBytes, headerRanges: head.headers
                )
                switch auth.decideImmediately(request) {
                case .allow(let who)?:
                    subject = who
                case .deny(let failure)?:
                    // An unauthenticated client does not get to stream a body: close after the answer.
                    var bodyFollows = true
                    if case .none = body { bodyFollows = false }
                    return local(
                        HTTPResponseStatus(statusCode: failure.status), failure.code, failure.message,
                        headers: failure.headers, close: bodyFollows
                    )
                case nil:
                    deferredAuth = request
                }
            }
            let all = snapshot.targets[entryIndex]
            let candidates = gateway.health.routable(all)
            if candidates.isEmpty {
                return local(
                    .serviceUnavailable, "no_healthy_instance", "service '\(service)' has no healthy instance right now",
                    headers: [("Retry-After", "1")]
                )
            }
            let balancerCandidates =
                candidates.count == all.count
                ? snapshot.balancerCandidates[entryIndex]
                : candidates.map { BalancerCandidate(instanceID: $0.instanceID, weight: $0.weight) }
            let upstreamTarget: String? = prefixSegments > 0 ? Self.strip(segments: prefixSegments, from: uri) : nil
            // A deferred decision builds the head once it knows the subject.
            let upstreamHead =
                deferredAuth == nil
                ? buildUpstreamHead(head, headBytes, target: upstreamTarget, requestID: requestID, subject: subject) : allocator.buffer(capacity: 0)
            let exchange = Exchange(
                requestHead: upstreamHead, clientMinorVersion: minor, method: method, keepAlive: keepAlive, requestID: requestID,
                started: started, path: String(path), service: service, routeTemplate: routeTemplate, candidates: candidates, balancerCandidates: balancerCandidates,
                retryBufferBytes: gateway.configuration.retryBufferBytes
            )
            exchange.entryIndex = entryIndex
            exchange.snapshotGeneration = loop.snapshotGeneration
            state = .proxying(exchange)
            gateway.requestStarted()
            // Without a body the request is complete now: the upstream gets it in one write.
            if case .none = body { exchange.requestComplete = true }
            if let deferredAuth {
                // 100 Continue only once the request is let in: a refused client never sends its body.
                authenticate(deferredAuth, exchange) { [unowned self] subject in
                    exchange.requestHead = self.buildUpstreamHead(head, headBytes, target: upstreamTarget, requestID: requestID, subject: subject)
                    if head.expectContinue { self.sendContinue(minor: minor) }
                }
                return
            }
            if head.expectContinue { sendContinue(minor: minor) }
            connect(exchange)
        }
    }

    private func sendContinue(minor: Int) {
        var buffer = allocator.buffer(capacity: 32)
        buffer.writeStaticString(minor == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n")
        connection.write(buffer)
        connection.flush()
    }

    /// Runs a provider that could not decide at once; the exchange waits (body buffered, reads
    /// held past ``pendingBodyLimit``) and then connects, or is answered with the refusal.
    private func authenticate(_ request: AuthRequest, _ exchange: Exchange, onAllow: @escaping (String?) -> Void) {
        guard let auth = gateway.configuration.auth else { return }
        exchange.authPending = true
        setDeadline(gateway.timeouts.upstream)
        let reactor = loop.reactor
        // Named fields, not a tuple: destructuring a tuple out of the box in the closure below
        // over-released the handler (Swift 6.3.1; a use-after-free in AuthTests).
        let waiting = ReactorBound(PendingAuth(handler: self, exchange: exchange, onAllow: onAllow))
        Task {
            let decision = await auth.authenticate(request)
            reactor.execute {
                let pending = waiting.value
                pending.handler.authDecided(decision, pending.exchange, onAllow: pending.onAllow)
            }
        }
    }

    /// An exchange waiting for its auth provider's decision.
    private struct PendingAuth {
        let handler: ProxyHandler
        let exchange: Exchange
        let onAllow: (String?) -> Void
    }

    private func authDecided(_ decision: AuthDecision, _ exchange: Exchange, onAllow: (String?) -> Void) {
        guard case .proxying(let current) = state, current === exchange else { return }
        exchange.authPending = false
        switch decision {
        case .allow(let subject):
            onAllow(subject)
            setDeadline(gateway.timeouts.idle)
            connect(exchange)
        case .deny(let failure):
            respondError(
                exchange, status: HTTPResponseStatus(statusCode: failure.status), code: failure.code, message: failure.message,
                headers: failure.headers, close: !exchange.requestComplete
            )
        }
    }

    /// The request head as the upstream gets it: same method, target (minus the service prefix)
    /// and headers byte for byte, except hop-by-hop headers (and those `Connection` names), the
    /// `X-Forwarded-*` set and `X-Request-ID`, which the gateway writes itself, and `Expect`,
    /// which it answered.
    private func buildUpstreamHead(_ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, target: String?, requestID: String, subject: String?) -> ByteBuffer {
        // Everything written is a piece of the head, the strings passed in, or a fixed line:
        // twice the head (trusted X-Forwarded-* values are copied twice) bounds it.
        let subject = subject.flatMap { HeaderRules.acceptableFieldValue($0) ? $0 : nil }
        let maxBytes =
            2 * head.length + 2 * head.headers.count + (target?.utf8.count ?? 0) + peerIP.utf8.count + requestID.utf8.count + (subject?.utf8.count ?? 0) + 256
        var out = loop.heads.take(capacity: maxBytes)
        defer { loop.heads.keep(out) }
        headBytes.withUnsafeReadableBytes { raw in
            out.writeHead(maxBytes: maxBytes) { out in
                out.write(raw, head.method)
                out.write(" ")
                if let target {
                    out.write(string: target)
                } else {
                    out.write(raw, head.target)
                }
                out.write(" HTTP/1.1\r\n")
                // Header names listed in Connection are hop-by-hop too (the gateway's own excepted).
                var named: [Range<Int>] = []
                var host: Range<Int>? = nil
                var forwardedProto: Range<Int>? = nil
                var forwardedHost: Range<Int>? = nil
                for h in head.headers {
                    if peerTrusted && forwardedProto == nil && raw.equalsIgnoringCase(h.name, "x-forwarded-proto") && !h.value.isEmpty {
                        forwardedProto = h.value
                    } else if peerTrusted && forwardedHost == nil && raw.equalsIgnoringCase(h.name, "x-forwarded-host") && !h.value.isEmpty {
                        forwardedHost = h.value
                    }
                    if raw.equalsIgnoringCase(h.name, "connection") {
                        raw.forEachToken(in: h.value) { token in
                            if !raw.equalsIgnoringCase(token, "keep-alive") && !raw.equalsIgnoringCase(token, "close") && !HeaderRules.isGatewayOwned(raw, token) {
                                named.append(token)
                            }
                        }
                    } else if host == nil && raw.equalsIgnoringCase(h.name, "host") {
                        host = h.value
                    }
                }
                for h in head.headers {
                    if HeaderRules.isHopByHop(raw, h.name) || HeaderRules.isGatewayOwned(raw, h.name) { continue }
                    if head.expectContinue && raw.equalsIgnoringCase(h.name, "expect") { continue }
                    if !named.isEmpty && named.contains(where: { HeaderRules.equalIgnoringCase(raw, $0, h.name) }) { continue }
                    out.write(raw, h.name.lowerBound..<h.value.upperBound)
                    out.write("\r\n")
                }
                out.write("X-Forwarded-For: ")
                if peerTrusted {
                    for h in head.headers where raw.equalsIgnoringCase(h.name, "x-forwarded-for") && !h.value.isEmpty {
                        out.write(raw, h.value)
                        out.write(", ")
                    }
                }
                out.write(string: peerIP)
                if let forwardedProto {
                    out.write("\r\nX-Forwarded-Proto: ")
                    out.write(raw, forwardedProto)
                    out.write("\r\n")
                } else {
                    out.write("\r\nX-Forwarded-Proto: http\r\n")
                }
                if let host = forwardedHost ?? host {
                    out.write("X-Forwarded-Host: ")
                    out.write(raw, host)
                    out.write("\r\n")
                }
                out.write("X-Request-ID: ")
                out.write(string: requestID)
                out.write("\r\n")
                if let subject {
                    out.write("X-Tapper-Subject: ")
                    out.write(string: subject)
                    out.write("\r\n")
                }
                if case .chunked = head.framing { out.write("Transfer-Encoding: chunked\r\n") }
                out.write("\r\n")
            }
        }
        return out
    }

    /// Whether `path` can be `/health` or start with `/_tapper/`: its second byte is `h` or `_`.
    @inline(__always)
    static func mayBeAdminPath(_ path: Substring) -> Bool {
        var bytes = path.utf8.makeIterator()
        _ = bytes.next()
        let second = bytes.next()
        return second == UInt8(ascii: "h") || second == UInt8(ascii: "_")
    }

    /// Removes the first `n` path segments (the service prefix) from a request target, keeping
    /// the rest byte for byte: `/api/users/1?x` without 1 segment is `/users/1?x`.
    static func strip(segments n: Int, from uri: String) -> String {
        var seen = 0
        for i in uri.utf8.indices.dropFirst() {
            let b = uri.utf8[i]
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "?") {
                seen += 1
                if seen == n {
                    let rest = uri[i...]
                    return rest.hasPrefix("/") ? String(rest) : "/" + rest
                }
                if b == UInt8(ascii: "?") { break }
            }
        }
        return "/"
    }

    private func clientBody(_ buffer: ByteBuffer, payloadBytes: Int, _ exchange: Exchange) {
        exchange.requestBodyBytes += Int64(payloadBytes)
        if !exchange.responseStarted { setDeadline(gateway.timeouts.idle) }
        if exchange.requestBodyBytes > gateway.configuration.maxBodyBytes {
            exchange.upstream?.owner = nil
            exchange.upstream?.close()
            exchange.upstream = nil
            if exchange.responseStarted {
                abandon(exchange, outcome: "too_large")
                state = .closed
                connection.close()
            } else {
                respondError(exchange, status: .payloadTooLarge, code: "too_large", message: "the request body is larger than \(gateway.configuration.maxBodyBytes) bytes", close: true)
            }
            return
        }
        // The upstream already answered in full (and its connection is gone): drop the rest.
        if exchange.responseComplete { return }
        exchange.keepForReplay(buffer)
        if exchange.requestSent, let upstream = exchange.upstream {
            upstream.send(buffer)
            upstreamFlushPending = true
        } else {
            exchange.pending.append(buffer.compacted())
            exchange.pendingBytes += buffer.readableBytes
        }
    }

    private func clientEnd(_ exchange: Exchange) {
        exchange.requestComplete = true
        if exchange.responseComplete {
            // The upstream already answered in full (e.g. an early error); the body is done now.
            completeExchange(exchange)
            return
        }
        if exchange.requestSent, let upstream = exchange.upstream {
            upstream.flush()
            upstreamFlushPending = false
            setDeadline(gateway.timeouts.upstream)
        }
    }

    // MARK: upstream connection

    private func connect(_ exchange: Exchange) {
        var picked = gateway.pick(for: exchange, loop: loop)
        var freshOnly = false
        if picked == nil, exchange.retrySameInstanceFresh, let last = exchange.target,
            let index = exchange.candidates.firstIndex(where: { $0.service == last.service && $0.instanceID == last.instanceID })
        {
            // Every other instance is tried: a keep-alive connection the instance had closed
            // earns one more attempt on a fresh connection to it.
            exchange.retrySameInstanceFresh = false
            picked = index
            freshOnly = true
        }
        guard let index = picked else {
            return respondError(exchange, status: exchange.lastFailureWasTimeout ? .gatewayTimeout : .badGateway, code: "upstream_unavailable", message: "no instance of '\(exchange.service)' could be reached")
        }
        let target = exchange.candidates[index]
        exchange.target = target
        exchange.tried.insert(index)
        exchange.attempts += 1
        let key = target.address
        if !freshOnly, let pooled = loop.pool.takeIdle(key) {
            attach(pooled, to: exchange, fresh: false)
            return
        }
        let ref = self.ref
        loop.pool.connect(host: target.url.connectHost, port: target.url.port, key: key) { result in
            guard let self = ref.handler else {
                if case .success(let h) = result { h.close() }
                return
            }
            guard case .proxying(let current) = self.state, current === exchange else {
                if case .success(let h) = result { self.loop.pool.release(h) }
                return
            }
            switch result {
            case .success(let handler):
                self.attach(handler, to: exchange, fresh: true)
            case .failure(let error):
                self.gateway.noteOutcome(target: target, success: false)
                self.gateway.balancerFinished(target, loop: self.loop)
                if case .timedOut = error {
                    exchange.lastFailureWasTimeout = true
                } else {
                    exchange.lastFailureWasTimeout = false
                }
                // Never reached an instance: any method may go to another one.
                if exchange.attempts < self.gateway.configuration.maxAttempts && exchange.canReplay {
                    exchange.rewindForRetry()
                    self.connect(exchange)
                } else {
                    self.respondError(
                        exchange, status: exchange.lastFailureWasTimeout ? .gatewayTimeout : .badGateway, code: "upstream_unavailable",
                        message: exchange.lastFailureWasTimeout ? "connecting to the upstream instance timed out" : "the upstream instance refused the connection"
                    )
                }
            }
        }
    }

    private func attach(_ upstream: UpstreamHandler, to exchange: Exchange, fresh: Bool) {
        upstream.owner = self
        upstream.startExchange(isHEAD: exchange.isHEAD)
        exchange.upstream = upstream
        exchange.freshConnection = fresh
        exchange.requestSent = true
        upstream.send(exchange.requestHead)
        for buffer in exchange.pending { upstream.send(buffer) }
        exchange.pending.removeAll()
        exchange.pendingBytes = 0
        if exchange.requestComplete {
            setDeadline(gateway.timeouts.upstream)
        }
        loop.flushAtEndOfTick(upstream)
        upstreamFlushPending = false
        resumeClientReads()
    }

    // MARK: upstream → client

    /// A response head (never 1xx) from the upstream of the current exchange.
    func upstreamHead(_ head: HTTPHeadParser.Head, _ bytes: ByteBuffer, from upstream: UpstreamHandler) {
        guard case .proxying(let exchange) = state, exchange.upstream === upstream else { return }
        if exchange.requestComplete { setDeadline(gateway.timeouts.upstream) }
        exchange.responseStarted = true
        exchange.status = head.status
        exchange.upstreamKeepAlive = head.keepAlive
        let clientIsHTTP11 = exchange.clientMinorVersion >= 1
        var addChunkedHeader = false
        switch head.framing {
        case .chunked:
            if clientIsHTTP11 {
                addChunkedHeader = true
            } else {
                exchange.responseMode = .removeChunking(ChunkedBodyTracker())
                exchange.keepAlive = false
            }
        case .untilClose:
            if clientIsHTTP11 {
                exchange.responseMode = .addChunking
                addChunkedHeader = true
            } else {
                exchange.keepAlive = false
            }
        case .none, .contentLength:
            break
        }
        let exposeInstance = gateway.configuration.exposeInstanceHeader
        let target = exposeInstance ? exchange.target : nil
        let maxBytes = bytes.readableBytes + 128 + exchange.requestID.utf8.count + (target.map { $0.service.utf8.count + $0.instanceID.utf8.count } ?? 0)
        // Room for a small body too: it usually arrives in the same read and then goes out in the
        // same write (see ``writeToClient(_:)``).
        var out = loop.heads.take(capacity: maxBytes + min(upstream.bytesAfterHead, Self.coalesceBodyBytes))
        bytes.withUnsafeReadableBytes { raw in
            out.writeHead(maxBytes: maxBytes) { out in
                out.write(clientIsHTTP11 ? "HTTP/1.1" : "HTTP/1.0")
                // The status line after the version, as the upstream sent it (" 200 OK").
                let lineEnd = head.headers.first.map { $0.name.lowerBound - 2 } ?? head.length - 4
                out.write(raw, 8..<lineEnd)
                out.write("\r\n")
                var named: [Range<Int>] = []
                for h in head.headers where raw.equalsIgnoringCase(h.name, "connection") {
                    raw.forEachToken(in: h.value) { token in
                        if !raw.equalsIgnoringCase(token, "keep-alive") && !raw.equalsIgnoringCase(token, "close") { named.append(token) }
                    }
                }
                for h in head.headers {
                    if HeaderRules.isHopByHop(raw, h.name) || raw.equalsIgnoringCase(h.name, "x-request-id") { continue }
                    if exposeInstance && raw.equalsIgnoringCase(h.name, "x-tapper-instance") { continue }
                    if !named.isEmpty && named.contains(where: { HeaderRules.equalIgnoringCase(raw, $0, h.name) }) { continue }
                    out.write(raw, h.name.lowerBound..<h.value.upperBound)
                    out.write("\r\n")
                }
                out.write("X-Request-ID: ")
                out.write(string: exchange.requestID)
                out.write("\r\n")
                if let t = target {
                    out.write("X-Tapper-Instance: ")
                    out.write(string: t.service)
                    out.write("/")
                    out.write(string: t.instanceID)
                    out.write("\r\n")
                }
                if addChunkedHeader { out.write("Transfer-Encoding: chunked\r\n") }
                if !exchange.keepAlive {
                    out.write("Connection: close\r\n")
                } else if !clientIsHTTP11 {
                    out.write("Connection: keep-alive\r\n")
                }
                out.write("\r\n")
            }
        }
        pendingClientHead = out
        clientFlushPending = true
    }

    /// Bytes of response body that are copied behind a held-back response head.
    static let coalesceBodyBytes = 4096

    /// Writes response bytes to the client, after the held-back head if there is one: a body
    /// that fits behind it goes in the same buffer (one `write` instead of a `writev` of two).
    private func writeToClient(_ buffer: ByteBuffer) {
        if var head = pendingClientHead {
            pendingClientHead = nil
            if buffer.readableBytes <= head.writableBytes {
                head.writeImmutableBuffer(buffer)
                queue(head: head)
                return
            }
            queue(head: head)
        }
        connection.write(buffer)
    }

    /// Queues a response head, and offers its buffer for reuse once it is sent.
    private func queue(head: ByteBuffer) {
        connection.write(head)
        loop.heads.keep(head)
    }

    /// Sends the held-back response head, if any, and flushes.
    private func flushClient() {
        if let head = pendingClientHead {
            pendingClientHead = nil
            queue(head: head)
        }
        connection.flush()
    }

    /// Body bytes of the current response: raw, with the upstream's framing.
    func upstreamBody(_ buffer: ByteBuffer, from upstream: UpstreamHandler) {
        guard case .proxying(let exchange) = state, exchange.upstream === upstream else { return }
        // A head held back was sent in this same read, and set the deadline already.
        if exchange.requestComplete && pendingClientHead == nil { setDeadline(gateway.timeouts.upstream) }
        guard buffer.readableBytes > 0 else { return }
        exchange.responseBytes += buffer.readableBytes
        clientFlushPending = true
        switch exchange.responseMode {
        case .passThrough:
            writeToClient(buffer)
        case .addChunking:
            var size = allocator.buffer(capacity: 20)
            size.writeString(String(buffer.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            writeToClient(size)
            connection.write(buffer)
            var crlf = allocator.buffer(capacity: 2)
            crlf.writeStaticString("\r\n")
            connection.write(crlf)
        case .removeChunking(var tracker):
            var payload: [ByteBuffer] = []
            _ = try? buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in
                try tracker.consume(raw) { range in
                    payload.append(buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count)!)
                }
            }
            exchange.responseMode = .removeChunking(tracker)
            for piece in payload { writeToClient(piece) }
        }
    }

    /// The current response is complete.
    func upstreamEnd(from upstream: UpstreamHandler) {
        guard case .proxying(let exchange) = state, exchange.upstream === upstream else { return }
        exchange.responseComplete = true
        if case .addChunking = exchange.responseMode {
            var last = allocator.buffer(capacity: 5)
            last.writeStaticString("0\r\n\r\n")
            writeToClient(last)
        }
        flushClient()
        clientFlushPending = false
        gateway.noteOutcome(target: exchange.target, success: exchange.status < 500)
        if exchange.requestComplete {
            completeExchange(exchange)
        } else {
            // The upstream answered before the body was sent: the connection cannot be reused.
            exchange.upstream?.owner = nil
            exchange.upstream?.close()
            exchange.upstream = nil
        }
    }

    func upstreamReadComplete() {
        if clientFlushPending {
            clientFlushPending = false
            flushClient()
        }
    }

    func upstreamClosed(_ upstream: UpstreamHandler, error: (any Error)?) {
        guard case .proxying(let exchange) = state, exchange.upstream === upstream else { return }
        exchange.upstream = nil
        if exchange.responseComplete { return }
        if let t = exchange.target {
            gateway.noteOutcome(target: t, success: false)
            gateway.balancerFinished(t, loop: loop)
        }
        if exchange.responseStarted {
            // Mid-response: the client can only learn of it by the connection closing.
            abandon(exchange, outcome: "upstream_reset")
            state = .closed
            connection.close()
            return
        }
        // Failed before any response byte. A reused keep-alive connection closed by the upstream
        // is retried on a fresh connection; otherwise idempotent requests may try another instance.
        if exchange.canReplay && exchange.attempts < gateway.configuration.maxAttempts
            && (exchange.isIdempotent || !exchange.freshConnection && exchange.noBodySent)
        {
            exchange.rewindForRetry()
            // The failed instance stays excluded (other pooled connections to it are likely
            // stale too); it gets one fresh connection only if no other instance is left.
            if !exchange.freshConnection { exchange.retrySameInstanceFresh = true }
            connect(exchange)
            return
        }
        respondError(exchange, status: .badGateway, code: "upstream_error", message: "the upstream instance closed the connection before answering")
    }

    // MARK: finishing

    private func completeExchange(_ exchange: Exchange) {
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            if exchange.upstreamKeepAlive && upstream.isActive {
                loop.pool.release(upstream)
            } else {
                upstream.owner = nil
                upstream.close()
            }
        }
        if let t = exchange.target { gateway.balancerFinished(t, loop: loop) }
        gateway.requestFinished(exchange: exchange, loop: loop)
        if exchange.keepAlive {
            finishedRequest()
        } else {
            state = .closed
            connection.closeAfterFlush()
        }
    }

    /// Drops an exchange that cannot complete (client gone, stream cut).
    private func abandon(_ exchange: Exchange, outcome: String) {
        pendingClientHead = nil
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            upstream.owner = nil
            upstream.close()
        }
        if let t = exchange.target { gateway.balancerFinished(t, loop: loop) }
        exchange.outcome = outcome
        gateway.requestFinished(exchange: exchange, loop: loop)
    }

    /// The request and its response are done: go on with pipelined bytes, if any, then read.
    private func finishedRequest() {
        if quiescing {
            state = .closed
            connection.closeAfterFlush()
            return
        }
        state = .idle
        headStarted = false
        setDeadline(gateway.timeouts.idle)
        process()
        resumeClientReads()
    }

    /// Answers the current exchange with a gateway error (nothing was sent to the client yet).
    private func respondError(
        _ exchange: Exchange, status: HTTPResponseStatus, code: String, message: String, headers: [(String, String)] = [], close: Bool = false
    ) {
        exchange.status = Int(status.code)
        exchange.outcome = code
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            upstream.owner = nil
            upstream.close()
        }
        gateway.requestFinished(exchange: exchange, loop: loop)
        let closeAfter = close || !exchange.keepAlive
        writeResponse(
            status: status, minor: exchange.clientMinorVersion, contentType: "application/json", body: GatewayErrors.body(code: code, message: message),
            requestID: exchange.requestID, extraHeaders: status == .serviceUnavailable ? [("Retry-After", "1")] + headers : headers, close: closeAfter,
            omitBody: exchange.isHEAD
        )
        afterLocalResponse(requestComplete: exchange.requestComplete, close: closeAfter)
    }

    /// Sends a complete gateway-generated response for a request that was never proxied.
    private func respondLocal(
        status: HTTPResponseStatus, body: String, contentType: String, method: String, uri: String, minor: Int, requestID: String,
        extraHeaders: [(String, String)], close: Bool, started: NIODeadline
    ) {
        writeResponse(
            status: status, minor: minor, contentType: contentType, body: body, requestID: requestID, extraHeaders: extraHeaders, close: close,
            omitBody: method == "HEAD"
        )
        gateway.localResponse(method: method, path: uri, status: Int(status.code), requestID: requestID, started: started, loop: loop)
        var requestComplete = false
        if case .none = self.body { requestComplete = true }
        afterLocalResponse(requestComplete: requestComplete, close: close)
    }

    private func writeResponse(
        status: HTTPResponseStatus, minor: Int, contentType: String, body: String, requestID: String, extraHeaders: [(String, String)], close: Bool,
        omitBody: Bool
    ) {
        var out = allocator.buffer(capacity: 192 + body.utf8.count)
        out.writeStaticString(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(status.code))
        out.writeStaticString(" ")
        out.writeString(status.reasonPhrase)
        out.writeStaticString("\r\nContent-Type: ")
        out.writeString(contentType)
        out.writeStaticString("\r\nContent-Length: ")
        out.writeString(String(body.utf8.count))
        out.writeStaticString("\r\nX-Request-ID: ")
        out.writeString(requestID)
        out.writeStaticString("\r\n")
        for (name, value) in extraHeaders {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if close {
            out.writeStaticString("Connection: close\r\n")
        } else if minor == 0 {
            out.writeStaticString("Connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        if !omitBody { out.writeString(body) }
        connection.write(out)
        connection.flush()
    }

    /// After a local response: close now, discard the rest of the request until its end, or
    /// (when the request is complete) wait for the next request.
    private func afterLocalResponse(requestComplete: Bool, close: Bool) {
        if close {
            state = .closed
            inbound = nil
            connection.closeAfterFlush()
        } else if requestComplete {
            finishedRequest()
        } else {
            state = .discarding(closeAfter: false)
        }
    }

    /// Writes a minimal error response for a request that could not even be parsed, then closes.
    private func rejectAndClose(status: HTTPResponseStatus, code: String, message: String) {
        state = .closed
        let body = GatewayErrors.body(code: code, message: message)
        var out = allocator.buffer(capacity: 160 + body.utf8.count)
        out.writeString("HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n")
        out.writeString(body)
        connection.write(out)
        connection.closeAfterFlush()
    }
}

@available(*, unavailable)
extension ProxyHandler: Sendable {}

extension ProxyHandler.State {
    var isOpen: Bool {
        if case .closed = self { return false }
        return true
    }

    var isIdle: Bool {
        if case .idle = self { return true }
        return false
    }
}
