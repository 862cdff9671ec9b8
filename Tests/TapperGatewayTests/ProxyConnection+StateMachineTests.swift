import NIOCore
import Testing

@testable import TapperGateway

/// The data path's lifecycle without sockets: every event sequence the live proxy tests drive
/// (pipelining, retries, timeouts, 100-continue, drain, deferred auth), fed to the state machine
/// one event at a time, with the actions compared (in the style of AHC's
/// `HTTP1ConnectionStateMachineTests`).
@Suite("ProxyConnection.StateMachine")
struct ProxyConnectionStateMachineTests {
    typealias Machine = ProxyConnection.StateMachine

    static let settings = Machine.Settings(
        headerReadTimeout: .seconds(10), idleTimeout: .seconds(60), upstreamTimeout: .seconds(5), maxBodyBytes: 1000,
        retry: RetryPolicy(maxAttempts: 3)
    )

    static func at(_ seconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(seconds) * 1_000_000_000) }

    /// A machine that received a head and started proxying it.
    static func proxying(
        method idempotent: Bool = true, body: Bool = false, keepAlive: Bool = true, expectContinue: Bool = false, now: Int64 = 1
    ) -> Machine {
        var m = Machine(settings: settings, now: at(0))
        #expect(m.headReceived(bodyFollows: body, keepAlive: keepAlive, now: at(now)) == keepAlive)
        #expect(
            m.startProxying(idempotent: idempotent, expectContinue: expectContinue, authDeferred: false, now: at(now))
                == .connect(sendContinue: expectContinue)
        )
        return m
    }

    @Test func pipelinedRequestsRunOneAfterAnother() {
        var m = Self.proxying()
        #expect(m.connecting(pooled: true, now: Self.at(1)) == .sendRequest)
        #expect(m.exchange.link == .attached(fresh: false))
        #expect(m.deadline == Self.at(6), "a complete request waits for the upstream timeout")
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(2))
        m.upstreamBody(now: Self.at(2))
        #expect(m.upstreamEnd(now: Self.at(2)) == .completeExchange(releaseUpstream: true, .readNext))
        #expect(m.phase == .idle(headStarted: false))
        #expect(m.deadline == Self.at(62), "idle between requests")
        // The second request of the pipeline.
        #expect(m.headReceived(bodyFollows: false, keepAlive: false, now: Self.at(3)) == false)
        #expect(m.startProxying(idempotent: true, expectContinue: false, authDeferred: false, now: Self.at(3)) == .connect(sendContinue: false))
        #expect(m.exchange.attempts == 0, "a new exchange starts from scratch")
        #expect(m.connecting(pooled: false, now: Self.at(3)) == .none)
        #expect(m.upstreamConnected(now: Self.at(3)) == .sendRequest)
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(3))
        #expect(m.upstreamEnd(now: Self.at(3)) == .completeExchange(releaseUpstream: true, .closeAfterFlush))
        #expect(m.phase == .closed)
        #expect(m.timerToSchedule() == nil, "a closed connection arms no timer")
    }

    @Test func upstreamThatClosesItsConnectionIsNotPooled() {
        var m = Self.proxying()
        _ = m.connecting(pooled: true, now: Self.at(1))
        m.upstreamHead(keepAlive: false, closesClient: false, now: Self.at(1))
        #expect(m.upstreamEnd(now: Self.at(1)) == .completeExchange(releaseUpstream: false, .readNext))
    }

    @Test func refusedConnectIsRetriedOnAnotherInstanceThenFails() {
        var m = Self.proxying(method: false, body: true)
        #expect(m.connecting(pooled: false, now: Self.at(1)) == .none)
        #expect(m.connectFailed(timedOut: false, canReplay: true, now: Self.at(1)) == .retry, "never reached an instance: any method may go elsewhere")
        _ = m.connecting(pooled: false, now: Self.at(1))
        #expect(m.connectFailed(timedOut: true, canReplay: true, now: Self.at(1)) == .retry)
        _ = m.connecting(pooled: false, now: Self.at(1))
        // Three attempts is the limit; the body is still being read, so the answer discards the rest.
        #expect(m.connectFailed(timedOut: true, canReplay: true, now: Self.at(1)) == .respond(.connectFailed(timedOut: true), .discardBody))
        #expect(m.phase == .discarding(closeAfter: false))
        #expect(m.requestBody(payloadBytes: 10, now: Self.at(2)) == .dropBody)
        #expect(m.requestEnd(now: Self.at(2)) == .then(.readNext))
    }

    @Test func allInstancesTriedAnswersWithTheLastFailure() {
        var m = Self.proxying()
        _ = m.connecting(pooled: false, now: Self.at(1))
        #expect(m.connectFailed(timedOut: true, canReplay: true, now: Self.at(1)) == .retry)
        #expect(m.noInstanceLeft(service: "users", now: Self.at(1)) == .respond(.noInstanceReached(service: "users", timedOut: true), .readNext))
    }

    @Test func bodyTooBigToReplayIsNotRetried() {
        var m = Self.proxying(method: false, body: true)
        _ = m.connecting(pooled: false, now: Self.at(1))
        #expect(m.connectFailed(timedOut: false, canReplay: false, now: Self.at(1)) == .respond(.connectFailed(timedOut: false), .discardBody))
    }

    @Test func brokenPooledConnectionRetriesIdempotentRequestAndGivesTheInstanceAFreshTry() {
        var m = Self.proxying()
        _ = m.connecting(pooled: true, now: Self.at(1))
        #expect(m.upstreamClosed(canReplay: true, now: Self.at(1)) == .retry)
        #expect(m.exchange.sameInstanceLast)
        // No other instance: the same one gets a fresh connection, once.
        #expect(m.noInstanceLeft(service: "users", now: Self.at(1)) == .connectLastInstanceFresh)
        _ = m.connecting(pooled: false, now: Self.at(1))
        #expect(m.upstreamConnected(now: Self.at(1)) == .sendRequest)
        #expect(m.upstreamClosed(canReplay: true, now: Self.at(1)) == .retry, "an idempotent request may go to another instance")
        #expect(m.noInstanceLeft(service: "users", now: Self.at(1)) == .respond(.noInstanceReached(service: "users", timedOut: false), .readNext))
    }

    @Test func postOnFreshConnectionIsNotRetriedButOnReusedOneWithoutBodyItIs() {
        var fresh = Self.proxying(method: false)
        _ = fresh.connecting(pooled: false, now: Self.at(1))
        _ = fresh.upstreamConnected(now: Self.at(1))
        #expect(fresh.upstreamClosed(canReplay: true, now: Self.at(1)) == .respond(.upstreamClosedEarly, .readNext))

        var reused = Self.proxying(method: false)
        _ = reused.connecting(pooled: true, now: Self.at(1))
        #expect(reused.upstreamClosed(canReplay: true, now: Self.at(1)) == .retry, "the keep-alive race: the request never reached the app")

        var withBody = Self.proxying(method: false, body: true)
        _ = withBody.connecting(pooled: true, now: Self.at(1))
        #expect(withBody.requestBody(payloadBytes: 5, now: Self.at(1)) == .forwardBody)
        #expect(withBody.upstreamClosed(canReplay: true, now: Self.at(1)) == .respond(.upstreamClosedEarly, .discardBody))
    }

    @Test func connectionLostMidResponseClosesTheClient() {
        var m = Self.proxying()
        _ = m.connecting(pooled: true, now: Self.at(1))
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(1))
        #expect(m.upstreamClosed(canReplay: true, now: Self.at(1)) == .abandon(outcome: "upstream_reset", close: true))
        #expect(m.phase == .closed)
    }

    @Test func bodyIsBufferedUntilAttachedThenForwardedAndFlushed() {
        var m = Self.proxying(body: true)
        #expect(m.requestBody(payloadBytes: 100, now: Self.at(2)) == .bufferBody)
        #expect(m.deadline == Self.at(62), "a body moving keeps the connection alive")
        _ = m.connecting(pooled: false, now: Self.at(2))
        #expect(m.requestBody(payloadBytes: 100, now: Self.at(2)) == .bufferBody, "still connecting")
        #expect(m.upstreamConnected(now: Self.at(2)) == .sendRequest)
        #expect(m.requestBody(payloadBytes: 100, now: Self.at(2)) == .forwardBody)
        #expect(m.requestEnd(now: Self.at(3)) == .flushUpstream)
        #expect(m.deadline == Self.at(8))
    }

    @Test func oversizedBodyIsRefusedAndClosed() {
        var m = Self.proxying(body: true)
        _ = m.connecting(pooled: true, now: Self.at(1))
        #expect(m.requestBody(payloadBytes: 1000, now: Self.at(1)) == .forwardBody)
        #expect(m.requestBody(payloadBytes: 1, now: Self.at(1)) == .respond(.bodyTooLarge(limit: 1000), .closeAfterFlush))
        #expect(m.phase == .closed)
    }

    @Test func earlyResponseBeforeTheBodyEndsDropsTheRest() {
        var m = Self.proxying(body: true)
        _ = m.connecting(pooled: true, now: Self.at(1))
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(1))
        #expect(m.upstreamEnd(now: Self.at(1)) == .closeUpstream, "the upstream connection is mid-request: unusable")
        #expect(m.requestBody(payloadBytes: 10, now: Self.at(1)) == .dropBody)
        #expect(m.requestEnd(now: Self.at(1)) == .completeExchange(releaseUpstream: true, .readNext))
    }

    @Test func malformedChunkedBodyAnswers400BeforeTheResponseAndClosesAfter() {
        var m = Self.proxying(body: true)
        #expect(m.requestFramingFailed(now: Self.at(1)) == .respond(.malformedChunkedBody, .closeAfterFlush))
        var started = Self.proxying(body: true)
        _ = started.connecting(pooled: true, now: Self.at(1))
        started.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(1))
        #expect(started.requestFramingFailed(now: Self.at(1)) == .abandon(outcome: "client_error", close: true))
    }

    @Test func headerReadTimeoutAnswers408AndIdleTimeoutJustCloses() {
        var m = Machine(settings: Self.settings, now: Self.at(0))
        let first = m.timerToSchedule()
        #expect(first == Self.at(10))
        #expect(m.timerToSchedule() == nil, "a timer is pending at that deadline already")
        m.headIncomplete(now: Self.at(5))
        #expect(m.timerToSchedule() == nil, "the deadline moved later: the pending timer re-checks")
        #expect(m.timerFired(scheduled: Self.at(10), now: Self.at(10)) == .none)
        let rearmed = m.timerToSchedule()
        #expect(rearmed == Self.at(15))
        #expect(m.timerFired(scheduled: Self.at(15), now: Self.at(15)) == .rejectAndClose(.requestTimeout))

        var idle = Machine(settings: Self.settings, now: Self.at(0))
        _ = idle.timerToSchedule()
        #expect(idle.timerFired(scheduled: Self.at(10), now: Self.at(10)) == .close)
    }

    @Test func staleTimerIsIgnored() {
        var m = Machine(settings: Self.settings, now: Self.at(100))
        _ = m.timerToSchedule()
        _ = m.headReceived(bodyFollows: false, keepAlive: true, now: Self.at(100))
        _ = m.startProxying(idempotent: true, expectContinue: false, authDeferred: true, now: Self.at(100))
        // The auth deadline (105) is earlier than the pending timer (110): a new one is armed.
        #expect(m.timerToSchedule() == Self.at(105))
        #expect(m.timerFired(scheduled: Self.at(110), now: Self.at(110)) == .none, "replaced by the earlier timer")
        #expect(m.timerFired(scheduled: Self.at(105), now: Self.at(105)) == .respond(.authTimeout, .readNext))
    }

    @Test func upstreamTimeoutBlamesTheInstance() {
        var m = Self.proxying()
        _ = m.connecting(pooled: true, now: Self.at(1))
        let at = m.timerToSchedule()!
        #expect(at == Self.at(6))
        let action = m.timerFired(scheduled: at, now: at)
        #expect(action == .respond(.upstreamTimeout, .readNext))
        #expect(GatewayError.upstreamTimeout.blamesUpstream)
    }

    @Test func stalledResponseAndStalledBodyAreCut() {
        var stalled = Self.proxying()
        _ = stalled.connecting(pooled: true, now: Self.at(1))
        stalled.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(1))
        let at = stalled.timerToSchedule()!
        #expect(stalled.timerFired(scheduled: at, now: at) == .abandon(outcome: "upstream_stalled", close: true))

        var slowClient = Self.proxying(body: true)
        _ = slowClient.connecting(pooled: true, now: Self.at(1))
        let idleAt = slowClient.timerToSchedule()!
        #expect(idleAt == Self.at(61))
        #expect(slowClient.timerFired(scheduled: idleAt, now: idleAt) == .abandon(outcome: "client_timeout", close: true))
    }

    @Test func expectContinueIsAnsweredBeforeConnecting() {
        _ = Self.proxying(body: true, expectContinue: true)
    }

    @Test func drainClosesIdleConnectionsAndFinishesBusyOnes() {
        var idle = Machine(settings: Self.settings, now: Self.at(0))
        #expect(idle.quiesce() == .close)

        var busy = Self.proxying()
        _ = busy.connecting(pooled: true, now: Self.at(1))
        #expect(busy.quiesce() == .none)
        #expect(busy.exchange.keepAlive == false, "the response says Connection: close")
        busy.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(1))
        #expect(busy.upstreamEnd(now: Self.at(1)) == .completeExchange(releaseUpstream: true, .closeAfterFlush))

        var discarding = Self.proxying(body: true)
        _ = discarding.connecting(pooled: false, now: Self.at(1))
        _ = discarding.connectFailed(timedOut: false, canReplay: false, now: Self.at(1))
        #expect(discarding.quiesce() == .none)
        #expect(discarding.requestEnd(now: Self.at(1)) == .then(.closeAfterFlush))

        var afterDrain = Machine(settings: Self.settings, now: Self.at(0))
        _ = afterDrain.headReceived(bodyFollows: false, keepAlive: true, now: Self.at(0))
        _ = afterDrain.quiesce()
        #expect(afterDrain.closeNow() == .none, "closed already")
        var stuck = Self.proxying()
        #expect(stuck.closeNow() == .abandon(outcome: "shutdown", close: true))
    }

    @Test func headsAfterDrainDoNotKeepTheConnection() {
        var m = Machine(settings: Self.settings, now: Self.at(0))
        _ = m.headReceived(bodyFollows: false, keepAlive: true, now: Self.at(0))
        _ = m.startProxying(idempotent: true, expectContinue: false, authDeferred: false, now: Self.at(0))
        _ = m.quiesce()
        _ = m.connecting(pooled: true, now: Self.at(0))
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(0))
        #expect(m.upstreamEnd(now: Self.at(0)) == .completeExchange(releaseUpstream: true, .closeAfterFlush))
    }

    @Test func deferredAuthHoldsTheExchangeUntilDecided() {
        var m = Machine(settings: Self.settings, now: Self.at(0))
        _ = m.headReceived(bodyFollows: true, keepAlive: true, now: Self.at(1))
        #expect(m.startProxying(idempotent: false, expectContinue: true, authDeferred: true, now: Self.at(1)) == .authenticate)
        #expect(m.exchange.authPending)
        #expect(m.requestBody(payloadBytes: 10, now: Self.at(1)) == .bufferBody)
        #expect(m.authDecided(refusal: nil, now: Self.at(2)) == .connect(sendContinue: true), "100 Continue only once let in")
        #expect(m.authDecided(refusal: nil, now: Self.at(2)) == .none, "decided once")

        var refused = Machine(settings: Self.settings, now: Self.at(0))
        _ = refused.headReceived(bodyFollows: true, keepAlive: true, now: Self.at(1))
        _ = refused.startProxying(idempotent: false, expectContinue: false, authDeferred: true, now: Self.at(1))
        let failure = AuthFailure.unauthorized("no key")
        #expect(refused.authDecided(refusal: failure, now: Self.at(2)) == .respond(.refused(failure), .closeAfterFlush))
    }

    @Test func localAnswersKeepOrCloseTheConnection() {
        var m = Machine(settings: Self.settings, now: Self.at(0))
        _ = m.headReceived(bodyFollows: false, keepAlive: true, now: Self.at(0))
        #expect(m.answeredLocally(close: false, now: Self.at(0)) == .respondLocally(.readNext))
        _ = m.headReceived(bodyFollows: true, keepAlive: true, now: Self.at(0))
        #expect(m.answeredLocally(close: false, now: Self.at(0)) == .respondLocally(.discardBody))
        #expect(m.requestEnd(now: Self.at(0)) == .then(.readNext))
        _ = m.headReceived(bodyFollows: false, keepAlive: false, now: Self.at(0))
        #expect(m.answeredLocally(close: false, now: Self.at(0)) == .respondLocally(.closeAfterFlush))
    }

    @Test func clientGoneMidExchangeAbandonsIt() {
        var m = Self.proxying()
        #expect(m.clientClosed(error: true) == .abandon(outcome: "client_error", close: false))
        #expect(!m.isOpen)
        var idle = Machine(settings: Self.settings, now: Self.at(0))
        #expect(idle.clientClosed(error: false) == .none)
    }

    @Test func http10ClientOfAChunkedResponseIsClosedAfterIt() {
        var m = Self.proxying()
        _ = m.connecting(pooled: true, now: Self.at(1))
        let plan = ResponseHeadRewriter.plan(framing: .chunked, clientMinorVersion: 0)
        #expect(plan.closesClient)
        m.upstreamHead(keepAlive: true, closesClient: plan.closesClient, now: Self.at(1))
        #expect(m.upstreamEnd(now: Self.at(1)) == .completeExchange(releaseUpstream: true, .closeAfterFlush))
    }

    @Test func retryPolicyRules() {
        let policy = RetryPolicy(maxAttempts: 2)
        let post = RetryPolicy.Request(attempts: 1, idempotent: false, canReplay: true, bodyBytesSent: 0)
        #expect(policy.decide(after: .connectFailed(timedOut: false), post) == .retry(sameInstanceLast: false))
        #expect(policy.decide(after: .closedBeforeResponse(freshConnection: true), post) == .fail)
        #expect(policy.decide(after: .closedBeforeResponse(freshConnection: false), post) == .retry(sameInstanceLast: true))
        var sent = post
        sent.bodyBytesSent = 1
        #expect(policy.decide(after: .closedBeforeResponse(freshConnection: false), sent) == .fail)
        var get = post
        get.idempotent = true
        #expect(policy.decide(after: .closedBeforeResponse(freshConnection: true), get) == .retry(sameInstanceLast: false))
        get.attempts = 2
        #expect(policy.decide(after: .connectFailed(timedOut: true), get) == .fail, "the attempt limit")
        get.attempts = 1
        get.canReplay = false
        #expect(policy.decide(after: .connectFailed(timedOut: true), get) == .fail, "a body no longer kept cannot be sent again")
    }

    // MARK: tunnels (upgraded connections)

    /// A machine whose upgrade request was answered with 101 at second 2.
    static func tunnelling() -> Machine {
        var m = Machine(settings: settings, now: at(0))
        _ = m.headReceived(bodyFollows: false, keepAlive: true, now: at(1))
        #expect(m.startProxying(idempotent: true, expectContinue: false, authDeferred: false, upgrade: true, now: at(1)) == .connect(sendContinue: false))
        #expect(m.connecting(pooled: true, now: at(1)) == .sendRequest)
        #expect(m.upstreamUpgraded(now: at(2)) == .startTunnel)
        #expect(m.phase == .tunnelling)
        #expect(!m.acceptsHead, "a tunnel's bytes are never parsed as requests")
        return m
    }

    @Test func tunnelIdleDeadlineMovesWithTrafficNotWithRequestTimeouts() {
        var m = Self.tunnelling()
        #expect(m.deadline == Self.at(2) + .hours(1), "the tunnel idle timeout, not the 5 s upstream timeout")
        _ = m.timerToSchedule()
        m.tunnelActivity(now: Self.at(100))
        #expect(m.timerToSchedule() == nil, "a later deadline arms no timer")
        // The timer armed for the old deadline fires early: nothing happens but a new timer.
        let first = Self.at(2) + .hours(1)
        #expect(m.timerFired(scheduled: first, now: first) == .none)
        #expect(m.timerToSchedule() == Self.at(100) + .hours(1))
        let second = Self.at(100) + .hours(1)
        #expect(m.timerFired(scheduled: second, now: second) == .endTunnel(outcome: "tunnel_idle_timeout"))
        #expect(m.phase == .closed)
    }

    @Test func halfCloseEndsEachSideThenTheTunnel() {
        var m = Self.tunnelling()
        #expect(m.tunnelInputEnded(fromClient: true) == .shutdownOutput(toUpstream: true), "the client's FIN goes on to the upstream")
        #expect(m.phase == .tunnelling, "the other direction still runs")
        #expect(m.tunnelInputEnded(fromClient: false) == .endTunnel(outcome: "ok"))
        #expect(m.phase == .closed)

        var n = Self.tunnelling()
        #expect(n.tunnelInputEnded(fromClient: false) == .shutdownOutput(toUpstream: false))
        #expect(n.tunnelUpstreamClosed(error: false) == .endTunnel(outcome: "ok"), "the upstream had ended already")
    }

    @Test func eitherSideFailingEndsTheTunnel() {
        var m = Self.tunnelling()
        #expect(m.tunnelUpstreamClosed(error: true) == .endTunnel(outcome: "upstream_reset"))
        var n = Self.tunnelling()
        #expect(n.clientClosed(error: true) == .endTunnel(outcome: "client_error"))
        #expect(n.tunnelUpstreamClosed(error: false) == .none, "over already")
    }

    @Test func drainLeavesTunnelsOpenUntilTheDrainTimeout() {
        var m = Self.tunnelling()
        #expect(m.quiesce() == .none)
        #expect(m.phase == .tunnelling)
        #expect(m.closeNow() == .endTunnel(outcome: "shutdown"))
    }

    @Test func only101ToAnUpgradeRequestSwitches() {
        var plain = Self.proxying()
        _ = plain.connecting(pooled: true, now: Self.at(1))
        #expect(plain.upstreamUpgraded(now: Self.at(2)) == .abandon(outcome: "upstream_protocol_error", close: true))

        // An upgrade request answered normally is an ordinary exchange, kept alive.
        var m = Machine(settings: Self.settings, now: Self.at(0))
        _ = m.headReceived(bodyFollows: false, keepAlive: true, now: Self.at(1))
        _ = m.startProxying(idempotent: true, expectContinue: false, authDeferred: false, upgrade: true, now: Self.at(1))
        _ = m.connecting(pooled: true, now: Self.at(1))
        m.upstreamHead(keepAlive: true, closesClient: false, now: Self.at(2))
        #expect(m.upstreamEnd(now: Self.at(2)) == .completeExchange(releaseUpstream: true, .readNext))
        #expect(m.phase == .idle(headStarted: false))
    }
}
