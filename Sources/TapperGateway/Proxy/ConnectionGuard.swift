import NIOCore

/// The first handler of every client connection: it notices the first byte of each request head
/// (so slow heads get 408 instead of the longer idle timeout) and can write raw bytes straight
/// to the socket for errors the HTTP layers cannot express (parser failures, 408).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    /// Set by the proxy handler while it waits for a request head.
    var waitingForHead = true
    /// Called on the first bytes of a new request head.
    var onHeadStarted: (() -> Void)?
    private(set) var headStarted = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if waitingForHead && !headStarted {
            headStarted = true
            onHeadStarted?()
        }
        context.fireChannelRead(data)
    }

    /// The proxy handler got a complete head.
    func headReceived() {
        waitingForHead = false
        headStarted = false
    }

    /// The exchange finished; the next bytes start a new head.
    func awaitNextHead() {
        waitingForHead = true
        headStarted = false
    }

    /// Writes a minimal response directly to the socket and closes the connection.
    func rejectAndClose(status: Int, reason: String, message: String) {
        guard let context else { return }
        let body = #"{"error":{"code":"\#(Self.code(status))","message":"\#(message)"}}"#
        var buffer = context.channel.allocator.buffer(capacity: 160 + body.utf8.count)
        buffer.writeString("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n")
        buffer.writeString(body)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    static func code(_ status: Int) -> String {
        switch status {
        case 400: return "bad_request"
        case 408: return "request_timeout"
        case 414: return "uri_too_long"
        case 431: return "headers_too_large"
        default: return "error"
        }
    }
}

@available(*, unavailable)
extension ConnectionGuard: Sendable {}
