import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A real HTTP/1.1 server on 127.0.0.1 (port 0) standing in for a service instance.
///
/// Behaviour is chosen by path:
/// - anything else: echo — JSON with the method, raw request target, headers (in order, repeated
///   ones kept), body length and FNV-1a hash, and this server's name;
/// - `/bytes/N`: streams N bytes (with backpressure);
/// - `/status/N`: answers status N;
/// - `/slow/MS`: answers after MS milliseconds;
/// - `/hang`: accepts and never answers;
/// - `/close`: closes the connection without answering;
/// - `/chunked`: a chunked response in three parts.
/// The health endpoint (`/health`) answers 200 unless ``healthStatus`` says otherwise.
public final class FakeUpstream: Sendable {
    public let name: String
    public let port: Int
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    let stats: NIOLockedValueBox<Stats>

    public struct Stats: Sendable {
        public var requests = 0
        public var healthChecks = 0
        public var inFlight = 0
        public var paths: [String] = []
        /// Status to answer on /health (200 by default).
        public var healthStatus = 200
        /// Status to answer on every non-health request instead of the normal behaviour.
        public var forcedStatus: Int? = nil
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public var requestCount: Int { stats.withLockedValue { $0.requests } }
    public var inFlight: Int { stats.withLockedValue { $0.inFlight } }
    public var healthCheckCount: Int { stats.withLockedValue { $0.healthChecks } }
    public var paths: [String] { stats.withLockedValue { $0.paths } }

    public func setHealthStatus(_ status: Int) { stats.withLockedValue { $0.healthStatus = status } }
    public func forceStatus(_ status: Int?) { stats.withLockedValue { $0.forcedStatus = status } }

    public init(name: String = "upstream") async throws {
        self.name = name
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let stats = NIOLockedValueBox(Stats())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FakeUpstreamHandler(name: name, stats: stats))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.group = group
        self.channel = channel
        self.stats = stats
        self.port = channel.localAddress!.port!
    }

    /// Stops listening and closes every connection (like a killed process).
    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

final class FakeUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let name: String
    let stats: NIOLockedValueBox<FakeUpstream.Stats>
    var head: HTTPRequestHead?
    var bodyBytes = 0
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    var remainingDownload = 0
    var downloading = false
    var context: ChannelHandlerContext?

    init(name: String, stats: NIOLockedValueBox<FakeUpstream.Stats>) {
        self.name = name
        self.stats = stats
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            bodyBytes = 0
            hash = 0xcbf2_9ce4_8422_2325
            stats.withLockedValue { s in
                if h.uri.hasPrefix("/health") { s.healthChecks += 1 } else { s.requests += 1; s.inFlight += 1; s.paths.append(h.uri) }
            }
        case .body(var buf):
            bodyBytes += buf.readableBytes
            // Bodies past 128 MiB are only counted (hashing them in a debug build is slow).
            if bodyBytes <= 128 << 20 {
                buf.withUnsafeReadableBytes { raw in
                    for b in raw {
                        hash ^= UInt64(b)
                        hash = hash &* 0x100_0000_01b3
                    }
                }
            }
            _ = buf.readSlice(length: buf.readableBytes)
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
        }
    }

    func finish() {
        stats.withLockedValue { $0.inFlight -= 1 }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        if path.hasPrefix("/health") {
            let status = stats.withLockedValue { $0.healthStatus }
            send(context: context, status: HTTPResponseStatus(statusCode: status), body: #"{"status":"ok"}"#)
            return
        }
        if let forced = stats.withLockedValue({ $0.forcedStatus }) {
            send(context: context, status: HTTPResponseStatus(statusCode: forced), body: #"{"forced":true}"#)
            finish()
            return
        }
        let parts = path.split(separator: "/")
        switch parts.first {
        case "bytes":
            let n = Int(parts.dropFirst().first ?? "0") ?? 0
            var headers = HTTPHeaders()
            headers.add(name: "Content-Length", value: String(n))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            remainingDownload = n
            downloading = true
            pump(context: context)
        case "status":
            let code = Int(parts.dropFirst().first ?? "200") ?? 200
            send(context: context, status: HTTPResponseStatus(statusCode: code), body: #"{"status":\#(code)}"#)
            finish()
        case "slow":
            let ms = Int64(parts.dropFirst().first ?? "100") ?? 100
            let echo = echoBody(head)
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(ms)) { [self] in
                self.send(context: context, status: .ok, body: echo)
                self.finish()
            }
        case "hang":
            break
        case "close":
            finish()
            context.close(promise: nil)
        case "chunked":
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok))), promise: nil)
            for piece in ["one,", "two,", "three"] {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: piece)))), promise: nil)
            }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            finish()
        default:
            send(context: context, status: .ok, body: echoBody(head))
            finish()
        }
    }

    func echoBody(_ head: HTTPRequestHead) -> String {
        let headers = head.headers.map { [$0.name, $0.value] }
        let object: [String: Any] = [
            "server": name, "method": head.method.rawValue, "uri": head.uri, "headers": headers,
            "body_bytes": bodyBytes, "body_hash": bodyBytes <= 128 << 20 ? String(hash, radix: 16) : "not-hashed",
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func send(context: ChannelHandlerContext, status: HTTPResponseStatus, body: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "X-Upstream", value: name)
        headers.add(name: "Connection", value: "keep-alive, X-Upstream-Private")
        headers.add(name: "X-Upstream-Private", value: "must-not-leak")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func pump(context: ChannelHandlerContext) {
        while remainingDownload > 0 && context.channel.isWritable {
            let n = min(remainingDownload, 64 * 1024)
            var buf = context.channel.allocator.buffer(capacity: n)
            buf.writeRepeatingByte(UInt8(ascii: "x"), count: n)
            remainingDownload -= n
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buf))), promise: nil)
        }
        if remainingDownload == 0 && downloading {
            downloading = false
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            finish()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && downloading { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }
}

@available(*, unavailable)
extension FakeUpstreamHandler: Sendable {}

/// FNV-1a, as ``FakeUpstream`` reports request bodies, for comparing what arrived.
public func fnv1a<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
        hash ^= UInt64(b)
        hash = hash &* 0x100_0000_01b3
    }
    return String(hash, radix: 16)
}
