import NIOCore

/// A client connection of the gateway's data path: ``ProxyConnection/StateMachine`` decides,
/// ``ProxyHandler`` (the shell) does the I/O.
enum ProxyConnection {}

extension ProxyConnection {
    /// The lifecycle of one client connection and of the exchange it is proxying, as a value:
    /// events in (a head parsed, body bytes, the upstream attached, answered, closed, a timer, an
    /// auth decision), ``Action``s out. No I/O and no clock reads: every event that moves a
    /// deadline is given `now` (the reactor's tick time), so tests drive it without sockets.
    ///
    /// What it owns: which phase the connection is in, the exchange's progress (request sent and
    /// complete, response started and complete, keep-alive on both sides), the retry decisions
    /// (through ``RetryPolicy``) and the one deadline the connection's timer enforces. What it
    /// does not: bytes (heads, bodies, buffers kept for replay), routing and balancing — the
    /// shell does those and reports what they found.
    ///
    /// The timer is lazy: moving the deadline later schedules nothing; after each event the shell
    /// asks ``timerToSchedule()`` whether a timer must be armed (the deadline moved earlier than
    /// the one pending, or none is).
    struct StateMachine {
        struct Settings: Hashable, Sendable {
            var headerReadTimeout: TimeAmount
            var idleTimeout: TimeAmount
            var upstreamTimeout: TimeAmount
            var maxBodyBytes: Int64
            var retry: RetryPolicy
            /// An upgraded connection (WebSocket) with no byte either way for this long is closed.
            var tunnelIdleTimeout: TimeAmount = .hours(1)
        }

        enum Phase: Hashable, Sendable {
            /// Waiting for a request head; `headStarted`: part of one has arrived.
            case idle(headStarted: Bool)
            /// Proxying the current exchange (``exchange``).
            case proxying
            /// A gateway-generated answer was sent; the rest of the request body is read and dropped.
            case discarding(closeAfter: Bool)
            /// The upstream answered an upgrade request with `101`: bytes are relayed both ways,
            /// until both sides ended their output or either closed.
            case tunnelling
            case closed
        }

        /// The exchange's upstream connection.
        enum Link: Hashable, Sendable {
            case none
            case connecting
            case attached(fresh: Bool)
        }

        /// The progress of the exchange being proxied.
        struct Exchange: Hashable, Sendable {
            var keepAlive: Bool
            var idempotent: Bool
            var expectContinue: Bool
            /// The request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
            var upgrade = false
            var authPending = false
            var link = Link.none
            var requestComplete: Bool
            var requestBodyBytes: Int64 = 0
            var responseStarted = false
            var responseComplete = false
            var upstreamKeepAlive = true
            var attempts = 0
            var lastAttemptFresh = true
            var lastFailureTimedOut = false
            /// The failed instance may get one more try, on a fresh connection, once no other is left.
            var sameInstanceLast = false
        }

        /// What the connection does once a response is written.
        enum After: Hashable, Sendable {
            /// Go on with the next request (pipelined bytes first).
            case readNext
            /// Read and drop the rest of the request body.
            case discardBody
            /// Close once the output is sent (the response says `Connection: close`).
            case closeAfterFlush
        }

        enum Action: Hashable, Sendable {
            case none
            /// Write a minimal error for a request that could not be parsed, then close.
            case rejectAndClose(GatewayError)
            /// Close the client connection now.
            case close
            /// Drop the exchange (its upstream connection is closed, its outcome recorded);
            /// `close`: close the client connection too.
            case abandon(outcome: String, close: Bool)
            /// Answer the exchange with a gateway error (its upstream connection, if any, is
            /// closed); then `After`.
            case respond(GatewayError, After)
            /// The shell answered a request it did not proxy (routing error, admin endpoint); then `After`.
            case respondLocally(After)
            /// Run the deferred auth provider.
            case authenticate
            /// Pick an instance and connect, or take a pooled connection (`sendContinue`: answer
            /// `Expect: 100-continue` first).
            case connect(sendContinue: Bool)
            /// Rewind the kept body and pick another instance.
            case retry
            /// Connect to the instance tried last, on a fresh connection.
            case connectLastInstanceFresh
            /// The upstream connection is attached: send the request head and the body kept so far.
            case sendRequest
            /// Body bytes: to the upstream, kept until one is attached, or dropped.
            case forwardBody
            case bufferBody
            case dropBody
            /// The request body is complete: flush it to the upstream.
            case flushUpstream
            /// The exchange is complete: release the upstream connection to the pool (or close it), record it, then `After`.
            case completeExchange(releaseUpstream: Bool, After)
            /// The response ended before the request body: the upstream connection cannot be reused.
            case closeUpstream
            /// A request body ended while discarding it; then `After`.
            case then(After)
            /// The upstream switched protocols: send the `101` head and relay bytes both ways.
            case startTunnel
            /// One side of the tunnel ended its output: end the other side's output (`toUpstream`:
            /// the upstream's) once what is queued for it is sent.
            case shutdownOutput(toUpstream: Bool)
            /// The tunnel is over: record it, close both connections once their output is sent.
            case endTunnel(outcome: String)
        }

        let settings: Settings
        private(set) var phase = Phase.idle(headStarted: false)
        /// Valid while ``phase`` is ``Phase/proxying``.
        private(set) var exchange = Exchange(keepAlive: true, idempotent: true, expectContinue: false, requestComplete: true)
        /// The request head last received: whether the connection stays open after it, and
        /// whether a body follows it.
        private var headKeepAlive = true
        private var headBodyFollows = false
        private(set) var quiescing = false
        private(set) var deadline = NIODeadline.distantFuture
        private var scheduledFor: NIODeadline?
        /// While tunnelling: which sides ended their output.
        private(set) var tunnelClientEnded = false
        private(set) var tunnelUpstreamEnded = false

        init(settings: Settings, now: NIODeadline) {
            self.settings = settings
            deadline = now + settings.headerReadTimeout
        }

        var isOpen: Bool { phase != .closed }

        /// The next bytes may be a request head (no exchange is running).
        var acceptsHead: Bool {
            if case .idle = phase { return true }
            return false
        }

        // MARK: timer

        /// A deadline to arm a timer for, if the one pending (if any) fires too late.
        mutating func timerToSchedule() -> NIODeadline? {
            guard phase != .closed else { return nil }
            if let pending = scheduledFor, pending <= deadline { return nil }
            scheduledFor = deadline
            return deadline
        }

        /// A timer armed for `scheduled` fired.
        mutating func timerFired(scheduled: NIODeadline, now: NIODeadline) -> Action {
            // A later timer replaced this one when the deadline moved earlier.
            guard scheduledFor == scheduled else { return .none }
            scheduledFor = nil
            guard phase != .closed, now >= deadline else { return .none }
            switch phase {
            case .idle(let headStarted):
                phase = .closed
                return headStarted ? .rejectAndClose(.requestTimeout) : .close
            case .discarding:
                phase = .closed
                return .close
            case .tunnelling:
                phase = .closed
                return .endTunnel(outcome: "tunnel_idle_timeout")
            case .proxying:
                if exchange.authPending {
                    return fail(.authTimeout, close: !exchange.requestComplete, now: now)
                }
                if exchange.responseStarted || !exchange.requestComplete {
                    // A stalled stream, or a client that stopped sending its body: cut it.
                    phase = .closed
                    return .abandon(outcome: exchange.responseStarted ? "upstream_stalled" : "client_timeout", close: true)
                }
                exchange.link = .none
                return fail(.upstreamTimeout, now: now)
            case .closed:
                return .none
            }
        }

        private mutating func setDeadline(_ amount: TimeAmount, from now: NIODeadline) {
            deadline = now + amount
        }

        // MARK: client → gateway

        /// Part of a request head arrived: the rest must come within the header-read timeout.
        mutating func headIncomplete(now: NIODeadline) {
            guard case .idle(false) = phase else { return }
            phase = .idle(headStarted: true)
            setDeadline(settings.headerReadTimeout, from: now)
        }

        /// The head could not be parsed (or crossed a limit): answer and close.
        mutating func headFailed(_ error: GatewayError) -> Action {
            phase = .closed
            return .rejectAndClose(error)
        }

        /// A request head was parsed; the shell now decides what to do with it (answer it
        /// itself, or ``startProxying(idempotent:expectContinue:authDeferred:now:)``).
        /// - Returns: whether the connection may stay open after this request.
        mutating func headReceived(bodyFollows: Bool, keepAlive: Bool, now: NIODeadline) -> Bool {
            phase = .idle(headStarted: false)
            headKeepAlive = keepAlive && !quiescing
            headBodyFollows = bodyFollows
            setDeadline(settings.idleTimeout, from: now)
            return headKeepAlive
        }

        /// The shell answers the request itself; `close` asks to close after it.
        mutating func answeredLocally(close: Bool, now: NIODeadline) -> Action {
            .respondLocally(afterResponse(requestComplete: !headBodyFollows, close: close || !headKeepAlive, now: now))
        }

        /// The request goes to an upstream instance.
        mutating func startProxying(idempotent: Bool, expectContinue: Bool, authDeferred: Bool, upgrade: Bool = false, now: NIODeadline) -> Action {
            phase = .proxying
            exchange = Exchange(keepAlive: headKeepAlive, idempotent: idempotent, expectContinue: expectContinue, requestComplete: !headBodyFollows)
            exchange.upgrade = upgrade
            if authDeferred {
                exchange.authPending = true
                setDeadline(settings.upstreamTimeout, from: now)
                return .authenticate
            }
            return .connect(sendContinue: expectContinue)
        }

        /// The deferred auth provider answered (`refusal` nil: allowed).
        mutating func authDecided(refusal: AuthFailure?, now: NIODeadline) -> Action {
            guard phase == .proxying, exchange.authPending else { return .none }
            exchange.authPending = false
            if let refusal {
                return fail(.refused(refusal), close: !exchange.requestComplete, now: now)
            }
            setDeadline(settings.idleTimeout, from: now)
            return .connect(sendContinue: exchange.expectContinue)
        }

        /// Request body bytes arrived (`payloadBytes` of them payload).
        mutating func requestBody(payloadBytes: Int, now: NIODeadline) -> Action {
            guard phase == .proxying else { return .dropBody }
            exchange.requestBodyBytes += Int64(payloadBytes)
            if !exchange.responseStarted { setDeadline(settings.idleTimeout, from: now) }
            if exchange.requestBodyBytes > settings.maxBodyBytes {
                if exchange.responseStarted {
                    phase = .closed
                    return .abandon(outcome: "too_large", close: true)
                }
                exchange.link = .none
                return fail(.bodyTooLarge(limit: settings.maxBodyBytes), close: true, now: now)
            }
            // The upstream already answered in full (and its connection is gone): drop the rest.
            if exchange.responseComplete { return .dropBody }
            if case .attached = exchange.link { return .forwardBody }
            return .bufferBody
        }

        /// The request body is complete.
        mutating func requestEnd(now: NIODeadline) -> Action {
            switch phase {
            case .proxying:
                exchange.requestComplete = true
                // The upstream already answered in full (e.g. an early error).
                if exchange.responseComplete { return complete(now: now) }
                guard case .attached = exchange.link else { return .none }
                setDeadline(settings.upstreamTimeout, from: now)
                return .flushUpstream
            case .discarding(let closeAfter):
                if closeAfter {
                    phase = .closed
                    return .then(.closeAfterFlush)
                }
                return .then(nextRequest(now: now))
            case .idle, .tunnelling, .closed:
                return .none
            }
        }

        /// A chunked request body broke the framing rules.
        mutating func requestFramingFailed(now: NIODeadline) -> Action {
            if phase == .proxying {
                if !exchange.responseStarted {
                    exchange.link = .none
                    return fail(.malformedChunkedBody, close: true, now: now)
                }
                phase = .closed
                return .abandon(outcome: "client_error", close: true)
            }
            phase = .closed
            return .close
        }

        /// The client connection closed (`error`: it failed rather than ended).
        mutating func clientClosed(error: Bool) -> Action {
            defer { phase = .closed }
            switch phase {
            case .proxying: return .abandon(outcome: error ? "client_error" : "client_closed", close: false)
            case .tunnelling: return .endTunnel(outcome: error ? "client_error" : "client_closed")
            case .idle, .discarding, .closed: return .none
            }
        }

        /// Graceful shutdown: idle connections close now, busy ones after their response.
        mutating func quiesce() -> Action {
            quiescing = true
            switch phase {
            case .idle:
                phase = .closed
                return .close
            case .proxying:
                if !exchange.responseStarted { exchange.keepAlive = false }
                return .none
            case .discarding:
                phase = .discarding(closeAfter: true)
                return .none
            case .tunnelling, .closed:
                // Open tunnels run on until they end or the drain timeout cuts them (``closeNow()``).
                return .none
            }
        }

        /// The drain timeout ran out: close whatever state the connection is in.
        mutating func closeNow() -> Action {
            defer { phase = .closed }
            switch phase {
            case .proxying: return .abandon(outcome: "shutdown", close: true)
            case .tunnelling: return .endTunnel(outcome: "shutdown")
            case .closed: return .none
            case .idle, .discarding: return .close
            }
        }

        // MARK: upstream connection

        /// The shell picked an instance and connects (`pooled`: it took an idle connection,
        /// which is attached at once).
        mutating func connecting(pooled: Bool, now: NIODeadline) -> Action {
            exchange.attempts += 1
            exchange.lastAttemptFresh = !pooled
            guard pooled else {
                exchange.link = .connecting
                return .none
            }
            return attached(fresh: false, now: now)
        }

        /// A new upstream connection is up.
        mutating func upstreamConnected(now: NIODeadline) -> Action {
            guard phase == .proxying, exchange.link == .connecting else { return .none }
            return attached(fresh: true, now: now)
        }

        private mutating func attached(fresh: Bool, now: NIODeadline) -> Action {
            exchange.link = .attached(fresh: fresh)
            if exchange.requestComplete { setDeadline(settings.upstreamTimeout, from: now) }
            return .sendRequest
        }

        /// Connecting failed; `canReplay`: the body sent so far is still kept.
        mutating func connectFailed(timedOut: Bool, canReplay: Bool, now: NIODeadline) -> Action {
            guard phase == .proxying else { return .none }
            exchange.link = .none
            exchange.lastFailureTimedOut = timedOut
            switch settings.retry.decide(after: .connectFailed(timedOut: timedOut), retryRequest(canReplay: canReplay)) {
            case .retry: return .retry
            case .fail: return fail(.connectFailed(timedOut: timedOut), now: now)
            }
        }

        /// Every candidate was tried (``Action/connect(sendContinue:)`` or ``Action/retry`` found none).
        mutating func noInstanceLeft(service: String, now: NIODeadline) -> Action {
            if exchange.sameInstanceLast {
                exchange.sameInstanceLast = false
                return .connectLastInstanceFresh
            }
            return fail(.noInstanceReached(service: service, timedOut: exchange.lastFailureTimedOut), now: now)
        }

        // MARK: upstream → client

        /// A response head (not 1xx); `closesClient`: the response's framing cannot be kept
        /// towards this client (see ``ResponseHeadRewriter``).
        mutating func upstreamHead(keepAlive: Bool, closesClient: Bool, now: NIODeadline) {
            exchange.responseStarted = true
            exchange.upstreamKeepAlive = keepAlive
            if closesClient { exchange.keepAlive = false }
            if exchange.requestComplete { setDeadline(settings.upstreamTimeout, from: now) }
        }

        /// Response body bytes: the response is still moving.
        mutating func upstreamBody(now: NIODeadline) {
            if exchange.requestComplete { setDeadline(settings.upstreamTimeout, from: now) }
        }

        /// The response is complete.
        mutating func upstreamEnd(now: NIODeadline) -> Action {
            exchange.responseComplete = true
            if exchange.requestComplete { return complete(now: now) }
            exchange.link = .none
            return .closeUpstream
        }

        /// The upstream connection closed, or sent what cannot be framed, before the response was
        /// complete. Any action but ``Action/none`` means the attempt failed.
        mutating func upstreamClosed(canReplay: Bool, now: NIODeadline) -> Action {
            guard phase == .proxying else { return .none }
            exchange.link = .none
            if exchange.responseComplete { return .none }
            if exchange.responseStarted {
                // Mid-response: the client can only learn of it by the connection closing.
                phase = .closed
                return .abandon(outcome: "upstream_reset", close: true)
            }
            let failure = RetryPolicy.Failure.closedBeforeResponse(freshConnection: exchange.lastAttemptFresh)
            switch settings.retry.decide(after: failure, retryRequest(canReplay: canReplay)) {
            case .retry(let sameInstanceLast):
                // The failed instance stays excluded (other pooled connections to it are likely
                // stale too); it gets one fresh connection only if no other instance is left.
                if sameInstanceLast { exchange.sameInstanceLast = true }
                return .retry
            case .fail:
                return fail(.upstreamClosedEarly, now: now)
            }
        }

        // MARK: tunnels (upgraded connections)

        /// The upstream answered `101 Switching Protocols`. Only an upgrade request whose body
        /// is complete may switch; anything else cannot be framed and fails like a broken
        /// response (the shell checks the request side, see ``UpstreamHandler``).
        mutating func upstreamUpgraded(now: NIODeadline) -> Action {
            guard phase == .proxying, exchange.upgrade, exchange.requestComplete, !exchange.responseStarted else {
                guard phase == .proxying else { return .none }
                phase = .closed
                return .abandon(outcome: "upstream_protocol_error", close: true)
            }
            exchange.responseStarted = true
            exchange.responseComplete = true
            phase = .tunnelling
            tunnelClientEnded = false
            tunnelUpstreamEnded = false
            setDeadline(settings.tunnelIdleTimeout, from: now)
            return .startTunnel
        }

        /// Bytes moved through the tunnel (either way): the idle deadline moves (lazily: no timer
        /// is armed for a later deadline).
        @inline(__always)
        mutating func tunnelActivity(now: NIODeadline) {
            deadline = now + settings.tunnelIdleTimeout
        }

        /// One side of the tunnel ended its output (`fromClient`: the client did). Its peer's
        /// output is ended in turn (half-close); once both have, the tunnel is over.
        mutating func tunnelInputEnded(fromClient: Bool) -> Action {
            guard phase == .tunnelling else { return .none }
            if fromClient { tunnelClientEnded = true } else { tunnelUpstreamEnded = true }
            if tunnelClientEnded && tunnelUpstreamEnded {
                phase = .closed
                return .endTunnel(outcome: "ok")
            }
            return .shutdownOutput(toUpstream: fromClient)
        }

        /// The upstream connection of the tunnel closed (`error`: reset or failed).
        mutating func tunnelUpstreamClosed(error: Bool) -> Action {
            guard phase == .tunnelling else { return .none }
            phase = .closed
            return .endTunnel(outcome: error ? "upstream_reset" : (tunnelUpstreamEnded ? "ok" : "upstream_closed"))
        }

        // MARK: finishing

        private func retryRequest(canReplay: Bool) -> RetryPolicy.Request {
            RetryPolicy.Request(
                attempts: exchange.attempts, idempotent: exchange.idempotent, canReplay: canReplay, bodyBytesSent: exchange.requestBodyBytes
            )
        }

        private mutating func complete(now: NIODeadline) -> Action {
            let release = exchange.upstreamKeepAlive
            exchange.link = .none
            guard exchange.keepAlive else {
                phase = .closed
                return .completeExchange(releaseUpstream: release, .closeAfterFlush)
            }
            return .completeExchange(releaseUpstream: release, nextRequest(now: now))
        }

        /// Answers the exchange with `error`.
        private mutating func fail(_ error: GatewayError, close: Bool = false, now: NIODeadline) -> Action {
            .respond(error, afterResponse(requestComplete: exchange.requestComplete, close: close || !exchange.keepAlive, now: now))
        }

        /// After a gateway-generated response: close, drop the rest of the body, or go on.
        private mutating func afterResponse(requestComplete: Bool, close: Bool, now: NIODeadline) -> After {
            if close {
                phase = .closed
                return .closeAfterFlush
            }
            if requestComplete { return nextRequest(now: now) }
            phase = .discarding(closeAfter: false)
            return .discardBody
        }

        /// The request and its response are done.
        private mutating func nextRequest(now: NIODeadline) -> After {
            if quiescing {
                phase = .closed
                return .closeAfterFlush
            }
            phase = .idle(headStarted: false)
            setDeadline(settings.idleTimeout, from: now)
            return .readNext
        }
    }
}
