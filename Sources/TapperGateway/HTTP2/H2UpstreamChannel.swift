#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CTapperH2
import NIOCore

/// One "connection" to an h2c instance as an ``UpstreamHandler`` sees it: a virtual
/// ``Connection`` that takes HTTP/1.1 requests one after another, like a keep-alive
/// connection, and carries each on a new stream of the instance's shared ``H2UpstreamSession``.
/// The stream's response comes back as HTTP/1.1 bytes (``H2UpstreamResponseWriter``), trailers
/// in a chunked body's trailer section. So pooling, retries, timeouts and the whole proxy
/// machine stay the HTTP/1.1 ones, while the instance sees one multiplexed connection per
/// gateway thread.
///
/// Flow control both ways: response DATA is acknowledged (WINDOW_UPDATE) only as the handler
/// takes it, and request bytes the instance's window does not admit yet stay here, where their
/// amount is the virtual connection's writability (the client's reads pause).
///
/// Every nghttp2 call for the stream happens in ``flush(_:)``, run by the session outside
/// nghttp2's callbacks.
final class H2UpstreamChannel: VirtualStream {
    let session: H2UpstreamSession
    private(set) var connection: Connection!

    /// The stream of the current exchange (0: none open).
    private(set) var streamID: Int32 = 0

    // request side
    private var requestTranslator = H2UpstreamRequestTranslator()
    private var pendingRequest: (list: H2HeaderList, hasBody: Bool)?
    /// Request body bytes waiting for the instance's window or the connection.
    private var outbound = H2Outbound()
    var backlog: Int { outbound.count }
    private var requestEnded = false
    /// nghttp2 asked for request data while there was none (NGHTTP2_ERR_DEFERRED).
    var dataDeferred = false

    // response side
    private var writer = H2UpstreamResponseWriter()
    private var requestWasHEAD = false
    private var headDone = false
    private var responseComplete = false
    private var inbound = H2Inbound()
    /// DATA payload the handler took (or that nobody will read) since the last accounting, and
    /// the stream it arrived on.
    private var consumed = 0
    private var consumedStream: Int32 = 0
    /// A stream to reset (the handler gave up on it).
    private var resetStream: Int32 = 0

    /// Queued in the session's dirty list.
    var dirty = false
    /// Backlog fell low inside a data callback: the handler hears it after the send.
    var drained = false

    init(session: H2UpstreamSession, reactor: Reactor) {
        self.session = session
        connection = Connection(virtualFor: self, reactor: reactor)
    }

    /// No exchange is using the channel: it may be closed when the session goes away.
    var isIdle: Bool { streamID == 0 && pendingRequest == nil }

    // MARK: the request (from the handler)

    func outputBytes(_ bytes: ByteBuffer) {
        requestTranslator.consume(bytes) { event in
            switch event {
            case .head(let list, let hasBody, let isHEAD):
                if streamID != 0 {
                    // The last response is complete but its request body is still going:
                    // nothing will read that stream any more.
                    resetStream = streamID
                    streamID = 0
                }
                outbound.removeAll()
                dataDeferred = false
                pendingRequest = (list, hasBody)
                requestEnded = !hasBody
                requestWasHEAD = isHEAD
                headDone = false
                responseComplete = false
            case .data(let data):
                outbound.append(data)
            case .end:
                requestEnded = true
            }
        }
        if requestTranslator.failed {
            connection.close(error: EPROTO)
            return
        }
        session.markDirty(self)
    }

    /// nghttp2's data source for the request body.
    func read(stream: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        // A stream given up (its reset is queued) must not take the next request's body.
        guard stream == streamID else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let before = outbound.count
        let copied = outbound.copy(into: buffer, length: length)
        if before > Connection.lowWatermark && outbound.count <= Connection.lowWatermark { session.noteDrained(self) }
        if outbound.isEmpty {
            if requestEnded {
                flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
                return copied
            }
            if copied == 0 {
                dataDeferred = true
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        return copied
    }

    // MARK: the response (from the session's callbacks)

    func responseField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        if headDone {
            writer.trailer(name: name, value: value)
            return
        }
        if name.first == UInt8(ascii: ":") {
            if name.count == 7 && name.elementsEqual(":status".utf8) { writer.start(status: Self.status(value)) }
            return
        }
        writer.field(name: name, value: value)
    }

    /// nghttp2 checked `:status` is three digits.
    private static func status(_ value: UnsafeRawBufferPointer) -> Int {
        var n = 0
        for b in value where b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") { n = n * 10 + Int(b - UInt8(ascii: "0")) }
        return n
    }

    /// A HEADERS frame of the response ended (`endStream`: it also ended the stream).
    func responseHeadersEnded(endStream: Bool) {
        if headDone {
            // Trailers (they always end the stream).
            responseEnded()
            return
        }
        let head = writer.finish(endStream: endStream, requestWasHEAD: requestWasHEAD)
        // 1xx: interim, the final head follows.
        if writer.status < 200 { return }
        headDone = true
        push(head, payload: 0)
        if endStream { responseEnded() }
    }

    func responseData(_ data: ByteBuffer) {
        consumedStream = streamID
        guard connection.isOpen else {
            consumed += data.readableBytes
            session.markDirty(self)
            return
        }
        push(writer.data(data), payload: data.readableBytes)
    }

    /// END_STREAM on DATA (trailers end through ``responseHeadersEnded(endStream:)``).
    func responseEnded() {
        guard !responseComplete else { return }
        responseComplete = true
        if let end = writer.end() { push(end, payload: 0) }
    }

    /// nghttp2 closed the current stream (`errorCode` 0: both ends done).
    func streamClosed(_ id: Int32, errorCode: UInt32) {
        guard id == streamID else { return }
        streamID = 0
        outbound.removeAll()
        if !responseComplete {
            // Reset (or refused) before the response ended: as if the connection had closed.
            returnUnread()
            if connection.isOpen { connection.close(error: errorCode == NGHTTP2_REFUSED_STREAM.rawValue ? ECONNREFUSED : ECONNRESET) }
        } else if session.ended && isIdle && inbound.isEmpty && connection.isOpen && (connection.handler as? UpstreamHandler)?.owner == nil {
            // The session takes no new streams (GOAWAY): this channel must not go back to the
            // pool's idle list, or the next request would be refused.
            connection.close()
        }
    }

    /// The session ended (connection closed, or failed): so does this channel.
    func sessionClosed() {
        streamID = 0
        pendingRequest = nil
        _ = inbound.discard()
        if connection.isOpen { connection.close(error: ECONNRESET) }
    }

    private func push(_ bytes: ByteBuffer, payload: Int) {
        inbound.append(bytes, payload: payload)
        connection.virtualInputArrived()
        deliverInbound()
    }

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

    /// Unread response payload goes back to the windows: nobody will read it.
    private func returnUnread() {
        consumed += inbound.discard()
        if consumed > 0 { session.markDirty(self) }
    }

    /// The handler closed the virtual connection (its exchange ended early, a timeout, or the
    /// pool had enough idle ones).
    func virtualClosed(error: Int32?) {
        returnUnread()
        pendingRequest = nil
        if streamID != 0 {
            resetStream = streamID
            streamID = 0
        }
        session.markDirty(self)
        session.channelClosed(self)
    }

    // MARK: talking to nghttp2 (from the session, outside its callbacks)

    func flush(_ ng: OpaquePointer) {
        if consumed > 0 {
            // Counts towards the connection's window even once the stream is gone.
            nghttp2_session_consume(ng, consumedStream, consumed)
            consumed = 0
        }
        if resetStream != 0 {
            nghttp2_submit_rst_stream(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), resetStream, UInt32(NGHTTP2_CANCEL.rawValue))
            resetStream = 0
        }
        if let request = pendingRequest {
            pendingRequest = nil
            let id: Int32 = request.list.withNameValues { nva in
                if request.hasBody {
                    var provider = nghttp2_data_provider(
                        source: nghttp2_data_source(ptr: Unmanaged.passUnretained(self).toOpaque()), read_callback: h2ReadRequestData)
                    return nghttp2_submit_request(ng, nil, nva.baseAddress, nva.count, &provider, nil)
                }
                return nghttp2_submit_request(ng, nil, nva.baseAddress, nva.count, nil, nil)
            }
            guard id > 0 else {
                // No new stream on this session (it received GOAWAY, or ran out of ids).
                connection.close(error: ECONNREFUSED)
                return
            }
            streamID = id
            session.attach(self, stream: id)
            if let counters = session.pool?.h2Counters { counters.add(counters.upstreamStreams) }
            return
        }
        if dataDeferred && streamID != 0 && (!outbound.isEmpty || requestEnded) {
            dataDeferred = false
            nghttp2_session_resume_data(ng, streamID)
        }
    }
}

/// nghttp2's read callback for request bodies (its `source.ptr` is the channel).
let h2ReadRequestData: nghttp2_data_source_read_callback = { _, stream, buffer, length, flags, source, _ in
    guard let source, let ptr = source.pointee.ptr, let buffer, let flags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    let channel = Unmanaged<H2UpstreamChannel>.fromOpaque(ptr).takeUnretainedValue()
    return channel.read(stream: stream, into: buffer, length: length, flags: flags)
}

@available(*, unavailable)
extension H2UpstreamChannel: Sendable {}
