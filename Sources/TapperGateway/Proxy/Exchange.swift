import NIOCore
import TapperCore

/// One proxied request/response: everything the ``ProxyHandler`` tracks about it.
final class Exchange {
    /// How response body bytes go from the upstream to the client.
    enum ResponseMode {
        /// As they arrive (Content-Length, or chunked towards an HTTP/1.1 client).
        case passThrough
        /// A close-delimited upstream body towards an HTTP/1.1 client: the gateway adds chunked
        /// framing so the client connection can stay open.
        case addChunking
        /// A chunked upstream body towards an HTTP/1.0 client: the framing is removed and the
        /// connection closes at the end.
        case removeChunking(ChunkedBodyTracker)
    }

    /// The upstream request head, serialized (request line, filtered headers, gateway headers);
    /// written once the request is let in (late when the auth provider answers asynchronously).
    var requestHead: ByteBuffer
    /// Waiting for the auth provider's decision: no upstream may be picked yet.
    var authPending = false
    let clientMinorVersion: Int
    /// The request method as sent, e.g. `GET`.
    let method: String
    let isHEAD: Bool
    let isIdempotent: Bool
    var keepAlive: Bool
    let requestID: String
    let started: NIODeadline
    let path: String
    /// The matched route's service and template (what metrics and the access log name; the
    /// exchange keeps these two strings rather than a copy of the whole route entry).
    let service: String
    let routeTemplate: String
    let candidates: [UpstreamTarget]
    /// ``candidates`` as balancer input, precomputed by the routing snapshot.
    let balancerCandidates: [BalancerCandidate]

    var target: UpstreamTarget?
    var upstream: UpstreamHandler?
    /// Indices into ``candidates`` already tried.
    var tried = TriedSet()
    var attempts = 0
    var freshConnection = true
    var lastFailureWasTimeout = false
    /// A reused keep-alive connection failed before any response byte: the same instance may
    /// get one more try on a fresh connection if no other instance is left.
    var retrySameInstanceFresh = false

    /// Body received before an upstream was attached.
    var pending: [ByteBuffer] = []
    var pendingBytes = 0
    /// A copy of the body sent so far, kept while it is small enough to replay on a retry.
    private var replay: [ByteBuffer] = []
    private var replayBytes = 0
    private let retryBufferBytes: Int
    private(set) var replayLost = false

    var requestSent = false
    var requestComplete = false
    var requestBodyBytes: Int64 = 0
    var responseStarted = false
    var responseComplete = false
    var responseMode = ResponseMode.passThrough
    var upstreamKeepAlive = true
    var status = 0
    var responseBytes = 0
    var outcome = "ok"
    /// ``entry``'s index in the loop's routing snapshot, and that snapshot's generation: where
    /// the loop caches the metric handles for it (-1: not cached).
    var entryIndex = -1
    var snapshotGeneration = -1

    init(
        requestHead: ByteBuffer, clientMinorVersion: Int, method: String, keepAlive: Bool, requestID: String, started: NIODeadline,
        path: String, service: String, routeTemplate: String, candidates: [UpstreamTarget], balancerCandidates: [BalancerCandidate], retryBufferBytes: Int
    ) {
        self.requestHead = requestHead
        self.clientMinorVersion = clientMinorVersion
        self.method = method
        self.isHEAD = method == "HEAD"
        self.isIdempotent = Self.idempotent(method)
        self.keepAlive = keepAlive
        self.requestID = requestID
        self.started = started
        self.path = path
        self.service = service
        self.routeTemplate = routeTemplate
        self.candidates = candidates
        self.balancerCandidates = balancerCandidates
        self.retryBufferBytes = retryBufferBytes
    }

    /// RFC 9110 idempotent methods.
    static func idempotent(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE": return true
        default: return false
        }
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

    /// Whether the request can be sent again: its body (if any) is still fully known.
    var canReplay: Bool { !replayLost }

    /// True while no body byte has gone to an upstream.
    var noBodySent: Bool { requestBodyBytes == 0 }

    /// Prepares a retry: the kept body becomes pending again.
    func rewindForRetry() {
        upstream = nil
        requestSent = false
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
