#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CTapperH2
import NIOCore

/// One HTTP/2 client connection (h2 chosen by ALPN on the TLS port, or h2c with prior knowledge
/// on the plain one): nghttp2 parses and frames in memory, fed by the connection's reads and
/// drained into its writes; each request stream is an ``H2Stream`` served by the proxy machine.
///
/// Limits: SETTINGS_MAX_CONCURRENT_STREAMS (``GatewayConfiguration/http2MaxConcurrentStreams``),
/// a header list limit (the HTTP/1.1 header limit), windows of 256 KiB per stream and 4 MiB
/// per connection, nghttp2's own flood checks, and a budget for streams the client resets
/// (rapid reset, CVE-2023-44487): past it the connection ends with GOAWAY ENHANCE_YOUR_CALM.
/// A drain sends GOAWAY and closes once the streams in flight are done.
final class H2Session: ConnectionHandler, DrainableClient {
    let gateway: Gateway
    let loop: LoopContext
    let connection: Connection
    let role: ProxyHandler.Role
    let peer: SocketAddress4or6
    let secure: Bool
    private var ng: OpaquePointer?
    private var streams: [Int32: H2Stream] = [:]
    private var dirty: [H2Stream] = []
    private var drainedStreams: [H2Stream] = []
    private var pumpScheduled = false
    /// Inside nghttp2_session_mem_recv: nghttp2 calls wait for the end of it.
    private var receiving = false
    /// The input buffer nghttp2 is parsing (DATA payload is sliced from it, not copied).
    private var input = ByteBuffer()
    private var inputBase: UnsafeRawPointer?
    private var resets = ResetBudget()
    private var lastActive: NIODeadline
    private var closing = false
    /// GOAWAY ENHANCE_YOUR_CALM was submitted (counted once).
    private var calmed = false

    static let streamWindow: Int32 = 256 * 1024
    static let connectionWindow: Int32 = 4 * 1024 * 1024

    /// Resets by the client: a burst of 200, then 100 a second (nghttp2 1.60's defaults are
    /// 1,000 and 33/s; a gateway stream costs an upstream request, so the burst is smaller).
    struct ResetBudget {
        var tokens = 200.0
        var last: NIODeadline?
        static let burst = 200.0
        static let perSecond = 100.0

        mutating func take(now: NIODeadline) -> Bool {
            if let last { tokens = min(Self.burst, tokens + Double((now - last).nanoseconds) / 1e9 * Self.perSecond) }
            last = now
            guard tokens >= 1 else { return false }
            tokens -= 1
            return true
        }
    }

    init(gateway: Gateway, loop: LoopContext, role: ProxyHandler.Role, connection: Connection, peer: SocketAddress4or6, secure: Bool) {
        self.gateway = gateway
        self.loop = loop
        self.role = role
        self.connection = connection
        self.peer = peer
        self.secure = secure
        self.lastActive = loop.reactor.tickTime
    }

    deinit {
        if let ng { nghttp2_session_del(ng) }
    }

    /// Takes over the connection (its first bytes are `initial`, the client preface included).
    func start(initial: ByteBuffer) {
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, h2OnBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, h2OnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2OnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2OnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2OnStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, h2OnFrameSend)
        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        // Windows open as the proxy machine takes the bytes (backpressure to the client).
        nghttp2_option_set_no_auto_window_update(option, 1)
        let config = gateway.configuration
        nghttp2_option_set_max_settings(option, 32)
        var session: OpaquePointer?
        nghttp2_session_server_new2(&session, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)
        ng = session
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: UInt32(config.http2MaxConcurrentStreams)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(Self.streamWindow)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: UInt32(headerListLimit)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Self.connectionWindow)
        gateway.connectionOpened()
        gateway.h2.add(gateway.h2.connections)
        loop.clientOpened(self)
        armIdleTimer()
        connectionRead(initial)
        connectionReadComplete()
    }

    var headerListLimit: Int { gateway.configuration.maxHeaderBytes + gateway.configuration.maxURIBytes }

    // MARK: ConnectionHandler

    func connectionRead(_ buffer: ByteBuffer) {
        guard let ng, !closing else { return }
        lastActive = loop.reactor.tickTime
        input = buffer
        receiving = true
        let result = buffer.withUnsafeReadableBytes { raw -> Int in
            inputBase = raw.baseAddress
            return nghttp2_session_mem_recv(ng, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        receiving = false
        inputBase = nil
        input = ByteBuffer()
        if result < 0 {
            // A bad preface or a connection error: nghttp2 queued GOAWAY where one is due.
            fail()
        }
    }

    func connectionReadComplete() { pump() }

    /// Reads wait while the client does not take what the gateway sends.
    var holdsReads: Bool { !connection.isWritable }

    func connectionWritabilityChanged(_ writable: Bool) {
        if writable { pump() }
    }

    func connectionClosed(error: Int32?) {
        closing = true
        for stream in Array(streams.values) { stream.closed() }
        streams.removeAll()
        dirty.removeAll()
        drainedStreams.removeAll()
        gateway.connectionClosed()
        gateway.h2.add(gateway.h2.connections, -1)
        loop.clientClosed(self)
    }

    // MARK: graceful shutdown

    func quiesce() {
        guard let ng, !closing else { return }
        nghttp2_submit_goaway(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), nghttp2_session_get_last_proc_stream_id(ng), UInt32(NGHTTP2_NO_ERROR.rawValue), nil, 0)
        pump()
    }

    func closeNow() { connection.close() }

    /// The idle timeout with no stream open ends the connection with GOAWAY.
    private func armIdleTimer() {
        let timeout = loop.machineSettings.idleTimeout
        loop.reactor.schedule(at: loop.reactor.tickTime + timeout) { [weak self] in
            guard let self, self.connection.isOpen, !self.closing, let ng = self.ng else { return }
            if self.streams.isEmpty && self.loop.reactor.tickTime - self.lastActive >= timeout {
                nghttp2_session_terminate_session(ng, UInt32(NGHTTP2_NO_ERROR.rawValue))
                self.pump()
                self.connection.closeAfterFlush()
                return
            }
            self.armIdleTimer()
        }
    }

    // MARK: streams → nghttp2 → connection

    func markDirty(_ stream: H2Stream) {
        guard !stream.dirty else { return }
        stream.dirty = true
        dirty.append(stream)
        guard !receiving, !pumpScheduled else { return }
        pumpScheduled = true
        loop.reactor.later { [weak self] in
            guard let self else { return }
            self.pumpScheduled = false
            self.pump()
        }
    }

    func noteDrained(_ stream: H2Stream) {
        guard !stream.drained else { return }
        stream.drained = true
        drainedStreams.append(stream)
    }

    /// Applies what the streams did to the session, then sends what it has while the client
    /// takes it.
    private func pump() {
        guard let ng, connection.isOpen else { return }
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for stream in batch {
                stream.dirty = false
                stream.flush(ng)
            }
        }
        guard writeFrames(whileWritable: true) else {
            fail()
            return
        }
        connection.flush()
        if !drainedStreams.isEmpty {
            let drained = drainedStreams
            drainedStreams.removeAll(keepingCapacity: true)
            for stream in drained {
                stream.drained = false
                stream.connection?.virtualOutputDrained()
            }
        }
        if nghttp2_session_want_read(ng) == 0 && nghttp2_session_want_write(ng) == 0 && connection.isOpen {
            connection.closeAfterFlush()
        }
    }

    /// A connection error: what nghttp2 still has to say (GOAWAY) goes out, then the close.
    private func fail() {
        guard ng != nil, !closing else { return }
        closing = true
        _ = writeFrames(whileWritable: false)
        connection.closeAfterFlush()
    }

    private func writeFrames(whileWritable: Bool) -> Bool {
        guard let ng else { return false }
        return H2Wire.writeFrames(ng, to: connection, whileWritable: whileWritable)
    }

    // MARK: nghttp2's callbacks

    fileprivate func beginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        guard tapper_h2_frame_type(frame) == UInt8(NGHTTP2_HEADERS.rawValue),
            tapper_h2_headers_category(frame) == Int32(NGHTTP2_HCAT_REQUEST.rawValue)
        else { return 0 }
        let id = tapper_h2_frame_stream(frame)
        streams[id] = H2Stream(id: id, session: self, headerListLimit: headerListLimit)
        gateway.h2.add(gateway.h2.streams)
        lastActive = loop.reactor.tickTime
        return 0
    }

    fileprivate func header(_ frame: UnsafePointer<nghttp2_frame>, _ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Int32 {
        guard tapper_h2_headers_category(frame) == Int32(NGHTTP2_HCAT_REQUEST.rawValue), let stream = streams[tapper_h2_frame_stream(frame)] else {
            return 0  // Trailers: HTTP/1.1 upstreams get none here.
        }
        stream.head.add(name: name, value: value)
        return 0
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let id = tapper_h2_frame_stream(frame)
        let endStream = tapper_h2_frame_flags(frame) & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(tapper_h2_frame_type(frame)) {
        case NGHTTP2_HEADERS.rawValue:
            guard let stream = streams[id] else { return 0 }
            if !stream.isStarted && tapper_h2_headers_category(frame) == Int32(NGHTTP2_HCAT_REQUEST.rawValue) {
                stream.start(endStream: endStream)
            } else if endStream {
                stream.requestEnd()
            }
        case NGHTTP2_DATA.rawValue:
            if endStream, let stream = streams[id] { stream.requestEnd() }
        case NGHTTP2_RST_STREAM.rawValue:
            gateway.h2.add(gateway.h2.clientResets)
            if !resets.take(now: loop.reactor.tickTime), let ng {
                if !calmed { gateway.h2.add(gateway.h2.rapidResetGoaways) }
                calmed = true
                nghttp2_session_terminate_session(ng, UInt32(NGHTTP2_ENHANCE_YOUR_CALM.rawValue))
            }
        default:
            break
        }
        return 0
    }

    fileprivate func dataChunk(_ id: Int32, _ data: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        guard let stream = streams[id] else {
            if let ng { nghttp2_session_consume_connection(ng, length) }
            return 0
        }
        let piece = H2Wire.payload(data, length, in: input, at: inputBase)
        stream.requestData(piece)
        return 0
    }

    fileprivate func streamClosed(_ id: Int32) -> Int32 {
        guard let stream = streams.removeValue(forKey: id) else { return 0 }
        stream.closed()
        lastActive = loop.reactor.tickTime
        return 0
    }

    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let type = UInt32(tapper_h2_frame_type(frame))
        guard type == NGHTTP2_DATA.rawValue || type == NGHTTP2_HEADERS.rawValue,
            tapper_h2_frame_flags(frame) & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
            let ng, let stream = streams[tapper_h2_frame_stream(frame)]
        else { return 0 }
        stream.responseSent(ng)
        return 0
    }
}

@available(*, unavailable)
extension H2Session: Sendable {}

private func session(_ user: UnsafeMutableRawPointer?) -> H2Session {
    Unmanaged<H2Session>.fromOpaque(user!).takeUnretainedValue()
}

private let h2OnBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, user in
    session(user).beginHeaders(frame!)
}

private let h2OnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, user in
    session(user).header(frame!, UnsafeRawBufferPointer(start: name, count: nameLength), UnsafeRawBufferPointer(start: value, count: valueLength))
}

private let h2OnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, user in
    session(user).frameReceived(frame!)
}

private let h2OnDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, id, data, length, user in
    session(user).dataChunk(id, data!, length)
}

private let h2OnStreamClose: nghttp2_on_stream_close_callback = { _, id, _, user in
    session(user).streamClosed(id)
}

private let h2OnFrameSend: nghttp2_on_frame_send_callback = { _, frame, user in
    session(user).frameSent(frame!)
}
