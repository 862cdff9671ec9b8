#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CTapperH2
import NIOCore

/// One HTTP/2 request stream. It is served by an ordinary ``ProxyHandler`` over a virtual
/// ``Connection``: the stream hands it the request as HTTP/1.1 bytes (``H2RequestHead``, DATA
/// as the body) and turns what it writes back into HTTP/2 (``H2ResponseTranslator``). So a
/// stream gets exactly the routing, auth, limits, balancing, retries, timeouts, access log and
/// tracing of an HTTP/1.1 request, from the same code.
///
/// Flow control both ways: request DATA is acknowledged to the client (WINDOW_UPDATE) only as
/// the handler takes it, and response bytes the client's window does not admit yet stay here,
/// where their amount is the virtual connection's writability (the upstream's reads pause).
///
/// Every nghttp2 call for the stream happens in ``flush(_:)``, run by the session outside
/// nghttp2's callbacks.
final class H2Stream: VirtualStream {
    let id: Int32
    unowned(unsafe) let session: H2Session
    var head: H2RequestHead
    private var framing = H2RequestHead.BodyFraming.none
    private(set) var connection: Connection?

    // request side
    private var inbound = H2Inbound()
    private(set) var requestEnded = false
    /// DATA payload the handler took since the last WINDOW_UPDATE accounting.
    private var consumed = 0
    /// The request's headers were complete (``start(endStream:)`` ran).
    private(set) var isStarted = false

    // response side
    private var translator = H2ResponseTranslator(requestWasHEAD: false)
    private var responseHead: H2HeaderList?
    private var headSubmitted = false
    /// The response's trailer section (sent as trailing HEADERS after the last DATA).
    private var responseTrailers: H2HeaderList?
    /// Response bytes waiting for the client's window or the connection.
    private var outbound = H2Outbound()
    var backlog: Int { outbound.count }
    /// The handler closed the virtual connection: no more response bytes come.
    private var responseFinished = false
    /// The response cannot end cleanly (cut short, or never produced): RST_STREAM.
    private var responseFailed = false
    private var resetSubmitted = false
    /// nghttp2 asked for data while there was none (NGHTTP2_ERR_DEFERRED).
    var dataDeferred = false
    /// nghttp2 closed the stream (both ends done, or a reset): nothing more is submitted for it.
    var closedInSession = false
    /// Queued in the session's dirty list.
    var dirty = false
    /// Backlog fell low inside a data callback: the handler hears it after the send.
    var drained = false

    init(id: Int32, session: H2Session, headerListLimit: Int) {
        self.id = id
        self.session = session
        self.head = H2RequestHead(limit: headerListLimit)
    }

    // MARK: the request

    /// The request's headers are complete: the handler starts, or the gateway answers itself.
    func start(endStream: Bool) {
        isStarted = true
        requestEnded = endStream
        if head.tooLarge { return answerLocally(431, #"{"error":"request_header_fields_too_large","message":"the request's header list is larger than the gateway accepts"}"#) }
        if head.invalid { return answerLocally(400, #"{"error":"bad_request","message":"a header field holds CR, LF or NUL"}"#) }
        framing = head.framing(endStream: endStream)
        guard let bytes = head.http1(framing: framing) else {
            return answerLocally(405, #"{"error":"method_not_allowed","message":"CONNECT is not supported by the gateway"}"#)
        }
        translator = H2ResponseTranslator(requestWasHEAD: head.isHEAD)
        let connection = Connection(virtualFor: self, reactor: session.loop.reactor)
        let handler = ProxyHandler(
            gateway: session.gateway, loop: session.loop, role: session.role, connection: connection, peer: session.peer, secure: session.secure)
        connection.handler = handler
        self.connection = connection
        handler.start()
        push(bytes, payload: 0)
    }

    /// DATA payload of the request.
    func requestData(_ data: ByteBuffer) {
        guard let connection, connection.isOpen else {
            // Nobody reads it any more: give the window back at once.
            consumed += data.readableBytes
            session.markDirty(self)
            return
        }
        switch framing {
        case .chunked:
            push(ChunkFraming.chunk(data), payload: data.readableBytes)
        case .contentLength, .none:
            push(data, payload: data.readableBytes)
        }
    }

    /// The client ended the stream (END_STREAM on DATA or trailers).
    func requestEnd() {
        guard !requestEnded else { return }
        requestEnded = true
        if framing == .chunked, connection?.isOpen == true { push(ByteBuffer(staticString: "0\r\n\r\n"), payload: 0) }
    }

    private func push(_ bytes: ByteBuffer, payload: Int) {
        inbound.append(bytes, payload: payload)
        connection?.virtualInputArrived()
        deliverInbound()
    }

    /// Hands the handler what it can take now (also run by the virtual connection's
    /// ``Connection/readIfReady()`` when the handler stops holding reads).
    func deliverInbound() {
        guard let connection, connection.isOpen, let handler = connection.handler else { return }
        var delivered = false
        while connection.isOpen && !handler.holdsReads, let (bytes, payload) = inbound.pop() {
            if payload > 0 {
                consumed += payload
                session.markDirty(self)
            }
            delivered = true
            handler.connectionRead(bytes)
        }
        if delivered && connection.isOpen { handler.connectionReadComplete() }
        if inbound.isEmpty { connection.virtualInputDrained() }
    }

    // MARK: the response

    /// Bytes the handler flushed to the virtual connection: the response.
    func outputBytes(_ bytes: ByteBuffer) {
        translator.consume(bytes) { event in
            switch event {
            case .head(_, let list):
                responseHead = list
            case .data(let data):
                guard data.readableBytes > 0 else { return }
                outbound.append(data)
            case .trailers(let fields):
                responseTrailers = fields
            }
        }
        if translator.failed { responseFailed = true }
        session.markDirty(self)
    }

    /// The handler closed the virtual connection (`error` nil: an orderly end).
    func virtualClosed(error: Int32?) {
        responseFinished = true
        if error != nil || responseHead == nil || !translator.isComplete || translator.failed { responseFailed = true }
        // Unread request bytes will never be read: their window goes back.
        consumed += inbound.discard()
        session.markDirty(self)
    }

    /// A response of the gateway's own, for a request that never reached a handler.
    private func answerLocally(_ status: Int, _ body: String) {
        var buffer = ByteBuffer()
        buffer.writeString(body)
        var list = H2HeaderList(fields: 3, bytes: 64)
        list.append(":status", H2ResponseTranslator.statusText(status))
        list.append("content-type", "application/json".utf8)
        list.append("content-length", String(buffer.readableBytes).utf8)
        responseHead = list
        outbound.append(buffer)
        responseFinished = true
        session.markDirty(self)
    }

    /// nghttp2 closed the stream; a handler still running hears a reset.
    func closed() {
        closedInSession = true
        // Request DATA nobody will read goes back to the connection's window (a client that
        // resets streams with unread bodies would otherwise shrink it for good).
        consumed += inbound.discard()
        if consumed > 0 { session.markDirty(self) }
        if let connection, connection.isOpen { connection.close(error: ECONNRESET) }
    }

    // MARK: talking to nghttp2 (from the session, outside its callbacks)

    func flush(_ ng: OpaquePointer) {
        if consumed > 0 {
            // Counts towards the connection's window even once the stream is gone.
            nghttp2_session_consume(ng, id, consumed)
            consumed = 0
        }
        guard !closedInSession else { return }
        if responseFailed {
            if !resetSubmitted {
                resetSubmitted = true
                nghttp2_submit_rst_stream(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, UInt32(NGHTTP2_INTERNAL_ERROR.rawValue))
            }
            return
        }
        if let head = responseHead, !headSubmitted {
            headSubmitted = true
            let bodyless = responseFinished && outbound.isEmpty && responseTrailers == nil
            submitResponse(ng, head, withBody: !bodyless)
            responseHead = H2HeaderList(fields: 0, bytes: 0)
            return
        }
        if dataDeferred && (!outbound.isEmpty || responseFinished) {
            dataDeferred = false
            nghttp2_session_resume_data(ng, id)
        }
    }

    private func submitResponse(_ ng: OpaquePointer, _ head: H2HeaderList, withBody: Bool) {
        head.withNameValues { nva in
            if withBody {
                var provider = nghttp2_data_provider(
                    source: nghttp2_data_source(ptr: Unmanaged.passUnretained(self).toOpaque()), read_callback: h2ReadResponseData)
                _ = nghttp2_submit_response(ng, id, nva.baseAddress, nva.count, &provider)
            } else {
                _ = nghttp2_submit_response(ng, id, nva.baseAddress, nva.count, nil)
            }
        }
    }

    /// nghttp2's data source: copies queued response bytes into its frame buffer.
    func read(_ ng: OpaquePointer, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let before = outbound.count
        let copied = outbound.copy(into: buffer, length: length)
        if before > Connection.lowWatermark && outbound.count <= Connection.lowWatermark { session.noteDrained(self) }
        if outbound.isEmpty {
            if responseFinished {
                flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
                if let trailers = responseTrailers {
                    // The trailers end the stream (nghttp2 allows submitting them here).
                    responseTrailers = nil
                    flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
                    trailers.withNameValues { nva in _ = nghttp2_submit_trailer(ng, id, nva.baseAddress, nva.count) }
                }
                return copied
            }
            if copied == 0 {
                dataDeferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return copied
    }

    /// The response's last frame went out: a request body still coming is refused politely
    /// (RST_STREAM NO_ERROR, RFC 9113 8.1), it would be read for nothing.
    func responseSent(_ ng: OpaquePointer) {
        guard !requestEnded, !closedInSession else { return }
        nghttp2_submit_rst_stream(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, UInt32(NGHTTP2_NO_ERROR.rawValue))
    }
}

/// nghttp2's read callback for response bodies (its `source.ptr` is the stream).
let h2ReadResponseData: nghttp2_data_source_read_callback = { ng, _, buffer, length, flags, source, _ in
    guard let ng, let source, let ptr = source.pointee.ptr, let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    let stream = Unmanaged<H2Stream>.fromOpaque(ptr).takeUnretainedValue()
    return stream.read(ng, into: buffer, length: length, flags: flags)
}

@available(*, unavailable)
extension H2Stream: Sendable {}
