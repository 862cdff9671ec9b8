import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// An upstream on 127.0.0.1 (port 0) that answers each request head with bytes chosen by a
/// closure, for responses a well-behaved HTTP library would not produce (close-delimited bodies,
/// 1xx before the final status, malformed framing). Request bodies are not read: use it for
/// requests without one.
public final class RawUpstream: Sendable {
    /// What to send for one request.
    public struct Reply: Sendable {
        public var bytes: String
        /// Close the connection after sending (ends a close-delimited body).
        public var close: Bool

        public init(_ bytes: String, close: Bool = false) {
            self.bytes = bytes
            self.close = close
        }
    }

    public let port: Int
    let channel: any Channel
    let group: MultiThreadedEventLoopGroup
    let targets: NIOLockedValueBox<[String]>

    public var url: String { "http://127.0.0.1:\(port)" }

    /// Request targets received, in order.
    public var received: [String] { targets.withLockedValue { $0 } }

    /// - Parameter reply: called with the request target of each request.
    public init(reply: @escaping @Sendable (String) -> Reply) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let targets = NIOLockedValueBox<[String]>([])
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RawUpstreamHandler(reply: reply, targets: targets))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        self.group = group
        self.channel = channel
        self.targets = targets
        self.port = channel.localAddress!.port!
    }

    public func stop() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

final class RawUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let reply: @Sendable (String) -> RawUpstream.Reply
    let targets: NIOLockedValueBox<[String]>
    var buffer: ByteBuffer?

    init(reply: @escaping @Sendable (String) -> RawUpstream.Reply, targets: NIOLockedValueBox<[String]>) {
        self.reply = reply
        self.targets = targets
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if var b = buffer {
            buffer = nil
            b.writeBuffer(&incoming)
            incoming = b
        }
        while let text = incoming.getString(at: incoming.readerIndex, length: incoming.readableBytes),
            let end = text.range(of: "\r\n\r\n")
        {
            let head = String(text[..<end.upperBound])
            incoming.moveReaderIndex(forwardBy: head.utf8.count)
            let target = head.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? "/"
            targets.withLockedValue { $0.append(target) }
            let r = reply(target)
            var out = context.channel.allocator.buffer(capacity: r.bytes.utf8.count)
            out.writeString(r.bytes)
            if r.close {
                context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                return
            }
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        if incoming.readableBytes > 0 { buffer = incoming }
    }
}

@available(*, unavailable)
extension RawUpstreamHandler: Sendable {}
