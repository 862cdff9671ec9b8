import NIOCore
import NIOHTTP1
import TapperCore

/// Everything the gateway writes to one client connection: proxied response heads and bodies
/// (the body re-framed as ``ResponseHeadRewriter`` planned), gateway-generated responses,
/// `100 Continue`, and the flushes that send them.
///
/// A response head is held back until the body bytes of the same upstream read can join it: a
/// small body goes out in the same buffer, one `write` instead of a `writev` of two.
struct ClientOutput {
    let connection: Connection
    unowned(unsafe) let loop: LoopContext
    /// The current response's head, held back (see above); sent by the next body write or flush.
    private var pendingHead: ByteBuffer?
    /// Bytes were written since the last flush.
    private var flushPending = false

    /// Bytes of response body that are copied behind a held-back response head.
    static let coalesceBodyBytes = 4096

    init(connection: Connection, loop: LoopContext) {
        self.connection = connection
        self.loop = loop
    }

    /// A response head is held back: the body bytes that follow in the same read join it.
    var holdsHead: Bool { pendingHead != nil }

    // MARK: proxied responses

    /// Holds `head` back until the first body bytes or the flush.
    mutating func startResponse(head: ByteBuffer) {
        pendingHead = head
        flushPending = true
    }

    /// Body bytes of the response as the upstream framed them, re-framed for the client.
    mutating func body(_ buffer: ByteBuffer, mode: inout ResponseHeadRewriter.BodyMode) {
        flushPending = true
        switch mode {
        case .passThrough:
            write(buffer)
        case .addChunking:
            var size = ByteBuffer()
            size.writeString(String(buffer.readableBytes, radix: 16))
            size.writeStaticString("\r\n")
            write(size)
            connection.write(buffer)
            connection.write(ByteBuffer(staticString: "\r\n"))
        case .removeChunking(var tracker):
            var payload: [ByteBuffer] = []
            _ = try? buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in
                try tracker.consume(raw) { range in
                    payload.append(buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count)!)
                }
            }
            mode = .removeChunking(tracker)
            for piece in payload { write(piece) }
        }
    }

    /// Bytes of a tunnel, as they are; flushed with the upstream's read event.
    mutating func tunnel(_ buffer: ByteBuffer) {
        flushPending = true
        connection.write(buffer)
    }

    /// The response is complete: the last chunk if the gateway added chunking, then a flush.
    mutating func endResponse(mode: ResponseHeadRewriter.BodyMode) {
        if case .addChunking = mode { write(ByteBuffer(staticString: "0\r\n\r\n")) }
        flush()
    }

    /// The upstream's reads of one event are done: send what they produced.
    mutating func upstreamReadComplete() {
        if flushPending { flush() }
    }

    /// Forgets a held-back head (the exchange was abandoned before it went out).
    mutating func dropPendingHead() {
        pendingHead = nil
    }

    /// Writes `buffer` after the held-back head, in the head's buffer when it fits.
    private mutating func write(_ buffer: ByteBuffer) {
        if var head = pendingHead {
            pendingHead = nil
            if buffer.readableBytes <= head.writableBytes {
                head.writeImmutableBuffer(buffer)
                queue(head: head)
                return
            }
            queue(head: head)
        }
        connection.write(buffer)
    }

    /// Queues a response head, and offers its buffer for reuse once it is sent.
    private func queue(head: ByteBuffer) {
        connection.write(head)
        loop.heads.keep(head)
    }

    /// Sends the held-back head, if any, and flushes.
    mutating func flush() {
        flushPending = false
        if let head = pendingHead {
            pendingHead = nil
            queue(head: head)
        }
        connection.flush()
    }

    // MARK: the gateway's own responses

    /// A response of the gateway's own: an error or an admin endpoint's answer.
    struct Response {
        var status: HTTPResponseStatus
        var body: String
        var contentType = "application/json"
        var headers: [GatewayError.Header] = []
        /// A body already in bytes (Swagger UI's files, the merged OpenAPI document), sent
        /// instead of ``body`` without a copy.
        var bytes: ByteBuffer?

        init(status: HTTPResponseStatus, body: String, contentType: String = "application/json", headers: [GatewayError.Header] = []) {
            self.status = status
            self.body = body
            self.contentType = contentType
            self.headers = headers
        }

        init(status: HTTPResponseStatus, bytes: ByteBuffer, contentType: String, headers: [GatewayError.Header] = []) {
            self.init(status: status, body: "", contentType: contentType, headers: headers)
            self.bytes = bytes
        }

        init(_ error: GatewayError) {
            self.init(status: error.status, body: error.body, headers: error.headers)
        }
    }

    /// `100 Continue`, once the request is let in.
    func writeContinue(minor: Int) {
        connection.write(ByteBuffer(staticString: minor == 0 ? "HTTP/1.0 100 Continue\r\n\r\n" : "HTTP/1.1 100 Continue\r\n\r\n"))
        connection.flush()
    }

    /// A complete response of the gateway's own, flushed.
    /// - Parameters:
    ///   - omitBody: the request was HEAD (Content-Length stays that of the body).
    func write(_ response: Response, minor: Int, requestID: String, close: Bool, omitBody: Bool) {
        let status = response.status
        let body = response.body
        var out = ByteBuffer()
        out.reserveCapacity(192 + body.utf8.count)
        out.writeStaticString(minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(status.code))
        out.writeStaticString(" ")
        out.writeString(status.reasonPhrase)
        out.writeStaticString("\r\nContent-Type: ")
        out.writeString(response.contentType)
        out.writeStaticString("\r\nContent-Length: ")
        out.writeString(String(response.bytes?.readableBytes ?? body.utf8.count))
        out.writeStaticString("\r\nX-Request-ID: ")
        out.writeString(requestID)
        out.writeStaticString("\r\n")
        for header in response.headers {
            out.writeString(header.name)
            out.writeStaticString(": ")
            out.writeString(header.value)
            out.writeStaticString("\r\n")
        }
        if close {
            out.writeStaticString("Connection: close\r\n")
        } else if minor == 0 {
            out.writeStaticString("Connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        if let bytes = response.bytes {
            connection.write(out)
            if !omitBody { connection.write(bytes) }
        } else {
            if !omitBody { out.writeString(body) }
            connection.write(out)
        }
        connection.flush()
    }

    /// A minimal error response for a request that could not even be parsed; the connection
    /// closes once it is sent.
    func writeRejection(_ error: GatewayError) {
        let body = error.body
        var out = ByteBuffer()
        out.writeString(
            "HTTP/1.1 \(error.status.code) \(error.status.reasonPhrase)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        )
        out.writeString(body)
        connection.write(out)
        connection.closeAfterFlush()
    }
}

@available(*, unavailable)
extension ClientOutput: Sendable {}
