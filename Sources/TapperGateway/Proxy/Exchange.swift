import NIOCore
import TapperCore

/// The data of one proxied request/response: the upstream head, the body kept for a retry, the
/// route and the instance tried, and what metrics and the access log record. Its progress
/// (sent, answered, retried, kept alive) is the ``ProxyConnection/StateMachine``'s.
final class Exchange {
    /// A head whose upstream form waits for the deferred auth decision (the subject goes in it).
    struct Deferred {
        var head: HTTPHeadParser.Head
        var headBytes: ByteBuffer
    }

    /// The upstream request head, serialized (request line, filtered headers, gateway headers);
    /// written once the request is let in (late when the auth provider answers asynchronously).
    var requestHead: ByteBuffer
    var deferred: Deferred?
    let clientMinorVersion: Int
    /// The request method as sent, e.g. `GET`.
    let method: String
    let isHEAD: Bool
    /// The request asks to switch protocols and the gateway tunnels it (WebSocket).
    let upgrade: Bool
    let requestID: String
    let started: NIODeadline
    let path: String
    /// The route it matched: service, template, candidate instances.
    let route: RequestAdmission.Route
    /// The instance of the current (or last) attempt.
    private(set) var target: UpstreamTarget?
    /// The attempt's upstream connection, once attached.
    var upstream: UpstreamHandler?
    /// Indices into the route's candidates already tried.
    private(set) var tried = TriedSet()
    /// The current attempt's pick is not yet reported finished to the balancer.
    var attemptOpen = false
    /// Attempts started (instances tried, counting a retry on the same one).
    private(set) var attempts = 0
    /// The gateway's span, when tracing is on.
    let trace: ExchangeTrace?
    /// The span's `Host` (when it is recorded).
    let traceHost: SpanHost?

    /// Body received before an upstream was attached.
    var pending: [ByteBuffer] = []
    var pendingBytes = 0
    /// A copy of the body sent so far, kept while it is small enough to replay on a retry.
    private var replay: [ByteBuffer] = []
    private var replayBytes = 0
    private let retryBufferBytes: Int
    private(set) var replayLost = false

    var responseMode = ResponseHeadRewriter.BodyMode.passThrough
    var status = 0
    var responseBytes = 0
    /// Bytes the client sent through the tunnel, once upgraded (`responseBytes`: the other way).
    var tunnelBytesIn = 0
    var outcome = "ok" {
        didSet { endedWell = outcome == "ok" }
    }
    /// ``outcome`` is `ok` (read per span without copying the string).
    private(set) var endedWell = true
    /// The routing snapshot generation the route's entry index belongs to (where the loop
    /// caches the metric handles for it).
    var snapshotGeneration = -1

    init(
        requestHead: ByteBuffer, clientMinorVersion: Int, method: String, requestID: String, started: NIODeadline, path: String,
        route: RequestAdmission.Route, retryBufferBytes: Int, upgrade: Bool = false, trace: ExchangeTrace? = nil,
        traceHost: SpanHost? = nil
    ) {
        self.trace = trace
        self.traceHost = traceHost
        self.upgrade = upgrade
        self.requestHead = requestHead
        self.clientMinorVersion = clientMinorVersion
        self.method = method
        self.isHEAD = method == "HEAD"
        self.requestID = requestID
        self.started = started
        self.path = path
        self.route = route
        self.retryBufferBytes = retryBufferBytes
    }

    var service: String { route.service }

    /// An attempt on candidate `index` begins.
    func startAttempt(_ index: Int) {
        target = route.candidates[index]
        tried.insert(index)
        attemptOpen = true
        attempts += 1
    }

    /// The candidate index of the instance tried last.
    var lastTargetIndex: Int? {
        guard let last = target else { return nil }
        return route.candidates.firstIndex(where: { $0.service == last.service && $0.instanceID == last.instanceID })
    }

    /// Takes the upstream connection off the exchange (it no longer reports to this exchange's handler).
    func detachUpstream() -> UpstreamHandler? {
        guard let u = upstream else { return nil }
        upstream = nil
        u.owner = nil
        return u
    }

    /// The deferred auth provider let the request in: its upstream head, with `subject`.
    func buildDeferredHead(subject: String?, with rewriter: RequestHeadRewriter, heads: inout HeadBuffers) {
        guard let deferred else { return }
        requestHead = rewriter.rewrite(
            deferred.head, deferred.headBytes, target: route.upstreamTarget, requestID: requestID, subject: subject, upgrade: upgrade,
            traceParent: trace?.context, traceIDIsRequestID: trace?.traceIDIsRequestID ?? false, heads: &heads
        )
        self.deferred = nil
    }

    /// Writes the request head and the body received so far to `upstream` (flushed by the caller).
    func sendRequest(on upstream: UpstreamHandler) {
        upstream.startExchange(isHEAD: isHEAD, upgrade: upgrade)
        upstream.send(requestHead)
        for buffer in pending { upstream.send(buffer) }
        pending.removeAll()
        pendingBytes = 0
    }

    /// Keeps a copy of a body chunk for a possible retry, until the body outgrows the limit.
    func keepForReplay(_ buffer: ByteBuffer) {
        guard !replayLost else { return }
        replayBytes += buffer.readableBytes
        if replayBytes > retryBufferBytes {
            replayLost = true
            replay.removeAll()
        } else {
            replay.append(buffer.compacted())
        }
    }

    /// The exchange became a tunnel: what was kept to send or replay the request is let go
    /// (an idle tunnel should hold nothing it no longer needs).
    func becameTunnel() {
        requestHead = ByteBuffer()
        deferred = nil
        replay = []
        replayLost = true
        pending = []
        pendingBytes = 0
    }

    /// Whether the request can be sent again: its body (if any) is still fully known.
    var canReplay: Bool { !replayLost }

    /// Prepares a retry: the kept body becomes pending again.
    func rewindForRetry() {
        upstream = nil
        pending = replay
        pendingBytes = replayBytes
    }
}

/// A set of small non-negative integers (candidate indices) that allocates nothing below 64.
struct TriedSet {
    private var low: UInt64 = 0
    private var high: [Int] = []

    var isEmpty: Bool { low == 0 && high.isEmpty }

    func contains(_ i: Int) -> Bool {
        i < 64 ? low & (1 << UInt64(i)) != 0 : high.contains(i)
    }

    mutating func insert(_ i: Int) {
        if i < 64 {
            low |= 1 << UInt64(i)
        } else if !high.contains(i) {
            high.append(i)
        }
    }
}

@available(*, unavailable)
extension Exchange: Sendable {}

extension Exchange {
    /// The exchange goes to `target` over h2c (an upgrade never does: HTTP/2 has no `101`).
    @inline(__always)
    func usesHTTP2(_ target: UpstreamTarget) -> Bool { target.upstreamProtocol == .h2c && !upgrade }

    /// The pool key of `target` for this exchange.
    @inline(__always)
    func poolKey(_ target: UpstreamTarget) -> String { usesHTTP2(target) ? target.poolKey : target.address }
}
