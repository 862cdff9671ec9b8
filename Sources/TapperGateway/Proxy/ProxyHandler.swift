import NIOCore
import NIOHTTP1
import TapperCore

/// One client connection's HTTP handler: routes each request, proxies it to an upstream
/// connection of the same event loop, and streams bodies both ways with backpressure.
///
/// Reads from the client are held while the upstream cannot take more (and vice versa in
/// ``UpstreamHandler``), so a 1 GiB upload or download passes with flat memory. One lazily
/// rescheduled timer per connection enforces the header-read, idle and upstream timeouts.
final class ProxyHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        /// Waiting for a request head.
        case idle
        /// A gateway-generated response was sent; the rest of the request body is discarded.
        case discarding(closeAfter: Bool)
        /// Proxying the current exchange.
        case proxying(Exchange)
        case closed
    }

    let gateway: Gateway
    let loop: LoopContext
    let guardHandler: ConnectionGuard
    private var context: ChannelHandlerContext!
    private(set) var state: State = .idle
    private var readPending = false
    private var peerIP = ""
    private var deadline = NIODeadline.distantFuture
    /// When the pending timer task fires; nil when none is scheduled.
    private var scheduledFor: NIODeadline?
    private var quiescing = false
    /// Pipelined request parts that arrived while an earlier request was still being answered.
    private var queued: CircularBuffer<HTTPServerRequestPart> = CircularBuffer(initialCapacity: 0)
    private var draining = false

    /// Bytes of request body buffered while no upstream is attached before reads are paused.
    static let pendingBodyLimit = 256 * 1024

    init(gateway: Gateway, loop: LoopContext, guardHandler: ConnectionGuard) {
        self.gateway = gateway
        self.loop = loop
        self.guardHandler = guardHandler
    }

    var downstreamWritable: Bool { context?.channel.isWritable ?? false }

    // MARK: connection lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let ip = context.channel.remoteAddress?.ipAddress { peerIP = ip }
        guardHandler.onHeadStarted = { [unowned self] in
            self.setDeadline(self.gateway.configuration.headerReadTimeout)
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        gateway.connectionOpened()
        setDeadline(gateway.configuration.headerReadTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        gateway.connectionClosed()
        if case .proxying(let exchange) = state {
            abandon(exchange, outcome: "client_closed")
        }
        state = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Graceful shutdown: idle connections close now, busy ones after their response.
            quiescing = true
            switch state {
            case .idle:
                state = .closed
                context.close(promise: nil)
            case .proxying(let exchange):
                if !exchange.responseStarted { exchange.keepAlive = false }
            case .discarding:
                state = .discarding(closeAfter: true)
            case .closed:
                break
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            // Only answer when no response is under way; otherwise just drop the connection.
            if case .proxying(let exchange) = state {
                abandon(exchange, outcome: "client_error")
                state = .closed
                context.close(promise: nil)
                return
            }
            state = .closed
            switch parserError {
            case .headerOverflow:
                guardHandler.rejectAndClose(status: 431, reason: "Request Header Fields Too Large", message: "request head is too large")
            default:
                guardHandler.rejectAndClose(status: 400, reason: "Bad Request", message: "malformed HTTP request")
            }
            return
        }
        if case .proxying(let exchange) = state { abandon(exchange, outcome: "client_error") }
        state = .closed
        context.close(promise: nil)
    }

    // MARK: timer

    private func setDeadline(_ d: Duration) {
        deadline = .now() + d.timeAmount
        armTimer()
    }

    /// Schedules a timer task only when none is pending at or before the deadline: moving the
    /// deadline later (the common case, on every request) costs no scheduling at all.
    private func armTimer() {
        guard state.isOpen else { return }
        if let pending = scheduledFor, pending <= deadline { return }
        let fireAt = deadline
        scheduledFor = fireAt
        context.eventLoop.assumeIsolated().scheduleTask(deadline: fireAt) { [weak self] in
            self?.timerFired(scheduled: fireAt)
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
            if guardHandler.headStarted {
                guardHandler.rejectAndClose(status: 408, reason: "Request Timeout", message: "the request head was not received in time")
            } else {
                context.close(promise: nil)
            }
        case .proxying(let exchange):
            if exchange.responseStarted || !exchange.requestComplete {
                // Stalled stream, or a client that stopped sending its body: cut it.
                abandon(exchange, outcome: exchange.responseStarted ? "upstream_stalled" : "client_timeout")
                state = .closed
                context.close(promise: nil)
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

    func read(context: ChannelHandlerContext) {
        if !queued.isEmpty {
            readPending = true
            return
        }
        if case .proxying(let exchange) = state {
            if let upstream = exchange.upstream {
                if !upstream.isWritable {
                    readPending = true
                    return
                }
            } else if exchange.pendingBytes > Self.pendingBodyLimit {
                readPending = true
                return
            }
        }
        context.read()
    }

    private func resumeClientReads() {
        if readPending {
            readPending = false
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, case .proxying(let exchange) = state {
            exchange.upstream?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func upstreamBecameWritable() {
        resumeClientReads()
    }

    // MARK: client → gateway

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if !queued.isEmpty && !draining {
            queued.append(part)
            return
        }
        if case .head = part, !state.isIdle {
            // A pipelined request: answer it after the current one, in order.
            queued.append(part)
            return
        }
        handle(part)
    }

    private func handle(_ part: HTTPServerRequestPart) {
        switch part {
        case .head(let head):
            guardHandler.headReceived()
            startRequest(head)
        case .body(let buffer):
            switch state {
            case .proxying(let exchange):
                clientBody(buffer, exchange)
            case .idle, .discarding, .closed:
                break
            }
        case .end:
            switch state {
            case .proxying(let exchange):
                clientEnd(exchange)
            case .discarding(let closeAfter):
                if closeAfter {
                    state = .closed
                    context.close(promise: nil)
                } else {
                    finishedRequest()
                }
            case .idle, .closed:
                break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state, exchange.requestSent, let upstream = exchange.upstream {
            upstream.flush()
        }
        context.fireChannelReadComplete()
    }

    private func startRequest(_ head: HTTPRequestHead) {
        guard case .idle = state else { return }
        let config = gateway.configuration
        let started = NIODeadline.now()
        setDeadline(config.idleTimeout)

        var requestID = head.headers.first(name: "x-request-id") ?? ""
        if !HeaderRules.acceptableRequestID(requestID) { requestID = loop.requestIDs.make() }
        let keepAlive = head.isKeepAlive && !quiescing

        func local(_ status: HTTPResponseStatus, _ code: String, _ message: String, headers: [(String, String)] = [], close: Bool = false) {
            respondLocal(
                status: status, body: GatewayErrors.body(code: code, message: message), contentType: "application/json",
                head: head, requestID: requestID, extraHeaders: headers, close: close || !keepAlive, started: started, service: nil
            )
        }

        // Framing and size checks.
        if head.uri.utf8.count > config.maxURIBytes {
            return local(.uriTooLong, "uri_too_long", "the request target is longer than \(config.maxURIBytes) bytes", close: true)
        }
        var headBytes = head.uri.utf8.count + 16
        for (n, v) in head.headers { headBytes += n.utf8.count + v.utf8.count + 4 }
        if headBytes > config.maxHeaderBytes {
            return local(.requestHeaderFieldsTooLarge, "headers_too_large", "the request head is larger than \(config.maxHeaderBytes) bytes", close: true)
        }
        let lengths = head.headers[canonicalForm: "content-length"]
        let hasTE = head.headers.contains(name: "transfer-encoding")
        if hasTE && !lengths.isEmpty {
            return local(.badRequest, "bad_framing", "a request must not carry both Content-Length and Transfer-Encoding", close: true)
        }
        var contentLength: Int64? = nil
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), let n = Int64(first), n >= 0 else {
                return local(.badRequest, "bad_framing", "conflicting or invalid Content-Length", close: true)
            }
            contentLength = n
        }
        if let contentLength, contentLength > config.maxBodyBytes {
            return local(.payloadTooLarge, "too_large", "the request body is larger than \(config.maxBodyBytes) bytes", close: true)
        }

        // Path.
        let uri = head.uri
        guard uri.utf8.first == UInt8(ascii: "/") else {
            return local(.badRequest, "bad_target", "only origin-form request targets ('/path?query') are supported", close: true)
        }
        let path: Substring
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = uri[..<q]
        } else {
            path = Substring(uri)
        }
        if let violation = PathSafety.check(path) {
            return local(.badRequest, "bad_path", violation.rawValue)
        }

        // The gateway's own endpoints.
        if path == "/health" || path.hasPrefix("/_tapper/") {
            let reply = gateway.admin.respond(method: head.method, path: path, query: uri[path.endIndex...])
            return respondLocal(
                status: reply.status, body: reply.body, contentType: reply.contentType, head: head, requestID: requestID,
                extraHeaders: reply.headers, close: !keepAlive, started: started, service: nil
            )
        }

        // Routing.
        let snapshot = gateway.state.snapshot
        let method = head.method.rawValue
        switch snapshot.table.resolve(method: method, path: path) {
        case .notFound:
            return local(.notFound, "not_found", "no service has a route for \(method) \(String(path))")
        case .methodNotAllowed(let allowed):
            return local(.methodNotAllowed, "method_not_allowed", "\(method) is not allowed here; allowed: \(allowed.joined(separator: ", "))", headers: [("Allow", allowed.joined(separator: ", "))])
        case .matched(let match):
            let all = snapshot.targets[match.entryIndex]
            let candidates = gateway.health.routable(all)
            if candidates.isEmpty {
                return local(
                    .serviceUnavailable, "no_healthy_instance", "service '\(match.entry.service)' has no healthy instance right now",
                    headers: [("Retry-After", "1")]
                )
            }
            // Build the upstream request head.
            var (headers, chunked) = HeaderRules.strip(head.headers, reserve: 5)
            let priorXFF = head.headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
            headers.replaceOrAdd(name: "X-Forwarded-For", value: priorXFF.isEmpty ? peerIP : priorXFF + ", " + peerIP)
            headers.replaceOrAdd(name: "X-Forwarded-Proto", value: "http")
            if let host = head.headers.first(name: "host") {
                headers.replaceOrAdd(name: "X-Forwarded-Host", value: host)
            }
            headers.replaceOrAdd(name: "X-Request-ID", value: requestID)
            let expectContinue = head.headers.first(name: "expect")?.lowercased() == "100-continue"
            if expectContinue { headers.remove(name: "expect") }
            if chunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
            let upstreamURI = match.entry.prefixSegments > 0 ? Self.strip(segments: match.entry.prefixSegments, from: uri) : uri
            var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: upstreamURI, headers: headers)
            upstreamHead.headers = headers
            let exchange = Exchange(
                requestHead: upstreamHead, clientVersion: head.version, method: head.method, keepAlive: keepAlive, requestID: requestID,
                started: started, path: String(path), entry: match.entry, candidates: candidates,
                retryBufferBytes: config.retryBufferBytes
            )
            state = .proxying(exchange)
            gateway.requestStarted()
            if expectContinue {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            connect(exchange)
        }
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

    private func clientBody(_ buffer: ByteBuffer, _ exchange: Exchange) {
        exchange.requestBodyBytes += Int64(buffer.readableBytes)
        if !exchange.responseStarted { setDeadline(gateway.configuration.idleTimeout) }
        if exchange.requestBodyBytes > gateway.configuration.maxBodyBytes {
            exchange.upstream?.owner = nil
            exchange.upstream?.close()
            exchange.upstream = nil
            if exchange.responseStarted {
                abandon(exchange, outcome: "too_large")
                state = .closed
                context.close(promise: nil)
            } else {
                respondError(exchange, status: .payloadTooLarge, code: "too_large", message: "the request body is larger than \(gateway.configuration.maxBodyBytes) bytes", close: true)
            }
            return
        }
        exchange.keepForReplay(buffer)
        if exchange.requestSent, let upstream = exchange.upstream {
            upstream.send(.body(.byteBuffer(buffer)))
        } else {
            exchange.pending.append(buffer)
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
            upstream.send(.end(nil))
            upstream.flush()
            setDeadline(gateway.configuration.upstreamTimeout)
        }
    }

    // MARK: upstream connection

    private func connect(_ exchange: Exchange) {
        var picked = gateway.pick(from: exchange.candidates, excluding: exchange.tried, service: exchange.entry.service, loop: loop)
        var freshOnly = false
        if picked == nil, exchange.retrySameInstanceFresh, let last = exchange.target {
            // Every other instance is tried: a keep-alive connection the instance had closed
            // earns one more attempt on a fresh connection to it.
            exchange.retrySameInstanceFresh = false
            picked = last
            freshOnly = true
        }
        guard let target = picked else {
            return respondError(exchange, status: exchange.lastFailureWasTimeout ? .gatewayTimeout : .badGateway, code: "upstream_unavailable", message: "no instance of '\(exchange.entry.service)' could be reached")
        }
        exchange.target = target
        if !exchange.tried.contains(target.key) { exchange.tried.append(target.key) }
        exchange.attempts += 1
        let key = target.url.authority
        if !freshOnly, let pooled = loop.pool.takeIdle(key) {
            attach(pooled, to: exchange, fresh: false)
            return
        }
        loop.pool.connect(host: target.url.connectHost, port: target.url.port, key: key) { [weak self] result in
            guard let self else {
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
                if case .connectTimeout = error as? ChannelError {
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
        exchange.upstream = upstream
        exchange.freshConnection = fresh
        exchange.requestSent = true
        upstream.send(.head(exchange.requestHead))
        for buffer in exchange.pending { upstream.send(.body(.byteBuffer(buffer))) }
        exchange.pending.removeAll()
        exchange.pendingBytes = 0
        if exchange.requestComplete {
            upstream.send(.end(nil))
            setDeadline(gateway.configuration.upstreamTimeout)
        }
        upstream.flush()
        resumeClientReads()
    }

    // MARK: upstream → client

    func upstreamRead(_ part: HTTPClientResponsePart, from upstream: UpstreamHandler) {
        guard case .proxying(let exchange) = state, exchange.upstream === upstream else { return }
        if exchange.requestComplete { setDeadline(gateway.configuration.upstreamTimeout) }
        switch part {
        case .head(let head):
            if head.status.code < 200 { return }
            exchange.responseStarted = true
            exchange.status = Int(head.status.code)
            exchange.upstreamKeepAlive = head.isKeepAlive
            var (headers, chunked) = HeaderRules.strip(head.headers, reserve: 4)
            headers.replaceOrAdd(name: "X-Request-ID", value: exchange.requestID)
            if gateway.configuration.exposeInstanceHeader, let t = exchange.target {
                headers.replaceOrAdd(name: "X-Tapper-Instance", value: t.key)
            }
            let bodyless = exchange.method == .HEAD || head.status.code == 204 || head.status.code == 304
            if !bodyless && !headers.contains(name: "content-length") {
                if chunked || exchange.clientVersion.minor >= 1 {
                    headers.add(name: "Transfer-Encoding", value: "chunked")
                } else {
                    exchange.keepAlive = false
                }
            }
            if !exchange.keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: exchange.clientVersion, status: head.status, headers: headers))), promise: nil)
        case .body(let buffer):
            exchange.responseBytes += buffer.readableBytes
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            exchange.responseComplete = true
            context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
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
    }

    func upstreamReadComplete() {
        context.flush()
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
            context.close(promise: nil)
            return
        }
        // Failed before any response byte. A reused keep-alive connection closed by the upstream
        // is retried on a fresh connection; otherwise idempotent requests may try another instance.
        let idempotent = exchange.method.isIdempotent
        if exchange.canReplay && exchange.attempts < gateway.configuration.maxAttempts && (idempotent || !exchange.freshConnection && exchange.noBodySent) {
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
            context.close(promise: nil)
        }
    }

    /// Drops an exchange that cannot complete (client gone, stream cut).
    private func abandon(_ exchange: Exchange, outcome: String) {
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            upstream.owner = nil
            upstream.close()
        }
        if let t = exchange.target { gateway.balancerFinished(t, loop: loop) }
        exchange.outcome = outcome
        gateway.requestFinished(exchange: exchange, loop: loop)
    }

    private func finishedRequest() {
        if quiescing {
            state = .closed
            context.close(promise: nil)
            return
        }
        state = .idle
        guardHandler.awaitNextHead()
        setDeadline(gateway.configuration.idleTimeout)
        if !queued.isEmpty && !draining {
            // Replay pipelined parts until one of them starts a new exchange.
            draining = true
            while let part = queued.first, state.isOpen {
                if case .head = part, !state.isIdle { break }
                queued.removeFirst()
                handle(part)
            }
            draining = false
        }
        if queued.isEmpty { resumeClientReads() }
    }

    /// Answers the current exchange with a gateway error (nothing was sent to the client yet).
    private func respondError(_ exchange: Exchange, status: HTTPResponseStatus, code: String, message: String, close: Bool = false) {
        exchange.status = Int(status.code)
        exchange.outcome = code
        if let upstream = exchange.upstream {
            exchange.upstream = nil
            upstream.owner = nil
            upstream.close()
        }
        gateway.requestFinished(exchange: exchange, loop: loop)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        let body = GatewayErrors.body(code: code, message: message)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Request-ID", value: exchange.requestID)
        if status == .serviceUnavailable { headers.add(name: "Retry-After", value: "1") }
        let closeAfter = close || !exchange.keepAlive
        if closeAfter { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: exchange.clientVersion, status: status, headers: headers))), promise: nil)
        if exchange.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        afterLocalResponse(requestComplete: exchange.requestComplete, close: closeAfter)
    }

    /// Sends a complete gateway-generated response for a request that was never proxied.
    private func respondLocal(
        status: HTTPResponseStatus, body: String, contentType: String, head: HTTPRequestHead, requestID: String,
        extraHeaders: [(String, String)], close: Bool, started: NIODeadline, service: String?
    ) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Request-ID", value: requestID)
        for (n, v) in extraHeaders { headers.add(name: n, value: v) }
        if close { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        gateway.localResponse(method: head.method, path: head.uri, status: Int(status.code), requestID: requestID, started: started, loop: loop)
        afterLocalResponse(requestComplete: false, close: close)
    }

    /// After a local response: close now, discard the rest of the request until its `.end`,
    /// or (when `.end` already came) wait for the next request.
    private func afterLocalResponse(requestComplete: Bool, close: Bool) {
        if close {
            state = .closed
            context.close(promise: nil)
        } else if requestComplete {
            finishedRequest()
        } else {
            state = .discarding(closeAfter: false)
        }
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

extension HTTPMethod {
    /// RFC 9110 idempotent methods.
    var isIdempotent: Bool {
        switch self {
        case .GET, .HEAD, .PUT, .DELETE, .OPTIONS, .TRACE: return true
        default: return false
        }
    }
}
