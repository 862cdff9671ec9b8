import NIOCore
import NIOHTTP1

/// The last handler of an upstream connection's pipeline. It hands response parts to the
/// ``ProxyHandler`` currently using the connection, and holds back reads while that client
/// cannot take more data (backpressure from client to upstream).
final class UpstreamHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// `host:port` of the instance, the pool key.
    let poolKey: String
    /// The exchange owner, nil while pooled.
    weak var owner: ProxyHandler?
    private(set) var context: ChannelHandlerContext?
    private var readPending = false
    private(set) var isActive = true
    weak var pool: UpstreamPool?

    init(poolKey: String) {
        self.poolKey = poolKey
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func send(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func close() {
        guard isActive else { return }
        isActive = false
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if let owner {
            owner.upstreamRead(part, from: self)
        } else {
            // Data on an idle pooled connection is a protocol error: drop the connection.
            close()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        if let owner {
            self.owner = nil
            owner.upstreamClosed(self, error: nil)
        } else {
            pool?.remove(self)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let wasActive = isActive
        isActive = false
        if let owner {
            self.owner = nil
            owner.upstreamClosed(self, error: error)
        } else {
            pool?.remove(self)
        }
        if wasActive { context.close(promise: nil) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { owner?.upstreamBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if let owner, !owner.downstreamWritable {
            readPending = true
        } else {
            context.read()
        }
    }

    /// Called when the client became writable again.
    func resumeReads() {
        if readPending, let context {
            readPending = false
            context.read()
        }
    }
}

@available(*, unavailable)
extension UpstreamHandler: Sendable {}
