import NIOCore
import NIOHTTP1
import TapperCore

/// One proxied request/response: everything the ``ProxyHandler`` tracks about it.
final class Exchange {
    let requestHead: HTTPRequestHead
    let clientVersion: HTTPVersion
    let method: HTTPMethod
    var keepAlive: Bool
    let requestID: String
    let started: NIODeadline
    let path: String
    let entry: RouteTable.Entry
    let candidates: [UpstreamTarget]

    var target: UpstreamTarget?
    var upstream: UpstreamHandler?
    var tried: [String] = []
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
    var upstreamKeepAlive = true
    var status = 0
    var responseBytes = 0
    var outcome = "ok"

    init(
        requestHead: HTTPRequestHead, clientVersion: HTTPVersion, method: HTTPMethod, keepAlive: Bool, requestID: String, started: NIODeadline,
        path: String, entry: RouteTable.Entry, candidates: [UpstreamTarget], retryBufferBytes: Int
    ) {
        self.requestHead = requestHead
        self.clientVersion = clientVersion
        self.method = method
        self.keepAlive = keepAlive
        self.requestID = requestID
        self.started = started
        self.path = path
        self.entry = entry
        self.candidates = candidates
        self.retryBufferBytes = retryBufferBytes
    }

    /// Keeps a copy of a body chunk for a possible retry, until the body outgrows the limit.
    func keepForReplay(_ buffer: ByteBuffer) {
        guard !replayLost else { return }
        replayBytes += buffer.readableBytes
        if replayBytes > retryBufferBytes {
            replayLost = true
            replay.removeAll()
        } else {
            replay.append(buffer)
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

@available(*, unavailable)
extension Exchange: Sendable {}
