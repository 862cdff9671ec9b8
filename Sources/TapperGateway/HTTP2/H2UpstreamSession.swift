#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CTapperH2
import NIOCore

/// The HTTP/2 connection of one reactor to one h2c instance (prior knowledge, RFC 9113 3.3),
/// on nghttp2's client session driven in memory like ``H2Session``. Every exchange of the
/// reactor with the instance is a stream here, through an ``H2UpstreamChannel`` (which the
/// upstream pool hands out like a keep-alive connection); nghttp2 queues requests beyond the
/// instance's SETTINGS_MAX_CONCURRENT_STREAMS until a stream closes.
///
/// A GOAWAY from the instance ends the session for new exchanges (the pool opens another);
/// streams it refused fail like a refused connection, so the proxy machine may retry them.
final class H2UpstreamSession: ConnectionHandler {
    /// Weak: a channel may outlive its reactor's pool at shutdown.
    private(set) weak var pool: UpstreamPool?
    let key: String
    private(set) var connection: Connection?
    private var ng: OpaquePointer?
    /// Streams nghttp2 has open, by id, and the channel each belongs to.
    private var streams: [Int32: H2UpstreamChannel] = [:]
    /// Every channel on the session, to close them with it.
    private var channels: [ObjectIdentifier: H2UpstreamChannel] = [:]
    private var dirty: [H2UpstreamChannel] = []
    private var drainedChannels: [H2UpstreamChannel] = []
    private var waiters: [(Result<UpstreamHandler, UpstreamConnectError>) -> Void] = []
    private var pumpScheduled = false
    private var receiving = false
    private var input = ByteBuffer()
    private var inputBase: UnsafeRawPointer?
    /// Closed, failed, or told by GOAWAY to start no more streams.
    private(set) var ended = false
    /// Counted in the status's open upstream sessions.
    private var counted = false

    static let streamWindow: Int32 = 256 * 1024
    static let connectionWindow: Int32 = 4 * 1024 * 1024

    init(pool: UpstreamPool, key: String) {
        self.pool = pool
        self.key = key
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_header_callback(callbacks, h2uOnHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, h2uOnFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, h2uOnDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, h2uOnStreamClose)
        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        var session: OpaquePointer?
        nghttp2_session_client_new2(&session, callbacks, Unmanaged.passUnretained(self).toOpaque(), option)
        ng = session
        var settings = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: UInt32(Self.streamWindow)),
        ]
        nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &settings, settings.count)
        nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Self.connectionWindow)
    }

    deinit {
        if let ng { nghttp2_session_del(ng) }
    }

    // MARK: channels

    /// Calls `completion` (never before returning) with a new channel's handler once the
    /// connection is up, or with the connect's failure.
    func openChannel(reactor: Reactor, _ completion: @escaping (Result<UpstreamHandler, UpstreamConnectError>) -> Void) {
        if connection != nil {
            let handler = makeChannel(reactor: reactor)
            reactor.later { completion(.success(handler)) }
        } else {
            waiters.append(completion)
        }
    }

    private func makeChannel(reactor: Reactor) -> UpstreamHandler {
        let channel = H2UpstreamChannel(session: self, reactor: reactor)
        channels[ObjectIdentifier(channel)] = channel
        let handler = UpstreamHandler(poolKey: key, connection: channel.connection)
        channel.connection.handler = handler
        return handler
    }

    /// The TCP connect finished.
    func connected(_ result: Result<Connection, UpstreamConnectError>, reactor: Reactor) {
        let waiting = waiters
        waiters = []
        switch result {
        case .success(let connection):
            guard !ended else {
                connection.close()
                for w in waiting { w(.failure(.failed(SocketError(operation: "connect \(key)", code: ECONNABORTED)))) }
                return
            }
            self.connection = connection
            connection.handler = self
            if let counters = pool?.h2Counters {
                counters.add(counters.upstreamSessions)
                counted = true
            }
            for w in waiting { w(.success(makeChannel(reactor: reactor))) }
            pump()
        case .failure(let error):
            ended = true
            pool?.sessionEnded(self)
            for w in waiting { w(.failure(error)) }
        }
    }

    func attach(_ channel: H2UpstreamChannel, stream: Int32) { streams[stream] = channel }

    func channelClosed(_ channel: H2UpstreamChannel) {
        channels[ObjectIdentifier(channel)] = nil
    }

    func markDirty(_ channel: H2UpstreamChannel) {
        guard !channel.dirty else { return }
        channel.dirty = true
        dirty.append(channel)
        guard !receiving, !pumpScheduled, let reactor = connection?.reactor else { return }
        pumpScheduled = true
        reactor.later { [self] in
            pumpScheduled = false
            pump()
        }
    }

    func noteDrained(_ channel: H2UpstreamChannel) {
        guard !channel.drained else { return }
        channel.drained = true
        drainedChannels.append(channel)
    }

    /// Closes the session and every channel on it.
    func close() {
        ended = true
        if let connection, connection.isOpen {
            connection.close()
        } else {
            closeChannels()
        }
    }

    private func closeChannels() {
        let all = Array(channels.values)
        channels.removeAll()
        streams.removeAll()
        dirty.removeAll()
        drainedChannels.removeAll()
        for channel in all { channel.sessionClosed() }
    }

    // MARK: ConnectionHandler

    func connectionRead(_ buffer: ByteBuffer) {
        guard let ng else { return }
        input = buffer
        receiving = true
        let result = buffer.withUnsafeReadableBytes { raw -> Int in
            inputBase = raw.baseAddress
            return nghttp2_session_mem_recv(ng, raw.bindMemory(to: UInt8.self).baseAddress, raw.count)
        }
        receiving = false
        inputBase = nil
        input = ByteBuffer()
        if result < 0 { fail() }
    }

    func connectionReadComplete() { pump() }

    /// Never: the instance's responses (and its WINDOW_UPDATEs) must be read even while
    /// requests wait to be written, or both sides could wait for each other.
    var holdsReads: Bool { false }

    func connectionWritabilityChanged(_ writable: Bool) {
        if writable { pump() }
    }

    func connectionClosed(error: Int32?) {
        ended = true
        if counted, let counters = pool?.h2Counters {
            counted = false
            counters.add(counters.upstreamSessions, -1)
        }
        pool?.sessionEnded(self)
        closeChannels()
    }

    // MARK: nghttp2 → connection

    private func pump() {
        guard let ng, let connection, connection.isOpen else { return }
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for channel in batch {
                channel.dirty = false
                channel.flush(ng)
            }
        }
        guard writeFrames() else {
            fail()
            return
        }
        connection.flush()
        if !drainedChannels.isEmpty {
            let drained = drainedChannels
            drainedChannels.removeAll(keepingCapacity: true)
            for channel in drained {
                channel.drained = false
                channel.connection.virtualOutputDrained()
            }
        }
        if nghttp2_session_want_read(ng) == 0 && nghttp2_session_want_write(ng) == 0 {
            ended = true
            pool?.sessionEnded(self)
            connection.closeAfterFlush()
        }
    }

    /// A connection error: nghttp2's last words (GOAWAY) go out, then the close.
    private func fail() {
        ended = true
        pool?.sessionEnded(self)
        guard let connection else { return closeChannels() }
        if let ng { _ = H2Wire.writeFrames(ng, to: connection, whileWritable: false) }
        connection.closeAfterFlush()
    }

    private func writeFrames() -> Bool {
        guard let ng, let connection else { return false }
        return H2Wire.writeFrames(ng, to: connection, whileWritable: true)
    }

    // MARK: nghttp2's callbacks

    /// The channel a frame of stream `id` is for, if that stream is still its exchange's.
    private func current(_ id: Int32) -> H2UpstreamChannel? {
        guard let channel = streams[id], channel.streamID == id else { return nil }
        return channel
    }

    fileprivate func header(_ frame: UnsafePointer<nghttp2_frame>, _ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Int32 {
        current(tapper_h2_frame_stream(frame))?.responseField(name: name, value: value)
        return 0
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let id = tapper_h2_frame_stream(frame)
        let endStream = tapper_h2_frame_flags(frame) & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(tapper_h2_frame_type(frame)) {
        case NGHTTP2_HEADERS.rawValue:
            current(id)?.responseHeadersEnded(endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            if endStream { current(id)?.responseEnded() }
        case NGHTTP2_GOAWAY.rawValue:
            // No new streams here; the pool opens another session for the next exchange, and
            // idle channels go (their next request would be refused).
            ended = true
            pool?.sessionEnded(self)
            for channel in channels.values where channel.isIdle { channel.connection.close() }
        default:
            break
        }
        return 0
    }

    fileprivate func dataChunk(_ id: Int32, _ data: UnsafePointer<UInt8>, _ length: Int) -> Int32 {
        guard let channel = current(id) else {
            if let ng { nghttp2_session_consume(ng, id, length) }
            return 0
        }
        let piece = H2Wire.payload(data, length, in: input, at: inputBase)
        channel.responseData(piece)
        return 0
    }

    fileprivate func streamClosed(_ id: Int32, _ errorCode: UInt32) -> Int32 {
        streams.removeValue(forKey: id)?.streamClosed(id, errorCode: errorCode)
        return 0
    }
}

@available(*, unavailable)
extension H2UpstreamSession: Sendable {}

private func upstreamSession(_ user: UnsafeMutableRawPointer?) -> H2UpstreamSession {
    Unmanaged<H2UpstreamSession>.fromOpaque(user!).takeUnretainedValue()
}

private let h2uOnHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, user in
    upstreamSession(user).header(frame!, UnsafeRawBufferPointer(start: name, count: nameLength), UnsafeRawBufferPointer(start: value, count: valueLength))
}

private let h2uOnFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, user in
    upstreamSession(user).frameReceived(frame!)
}

private let h2uOnDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, id, data, length, user in
    upstreamSession(user).dataChunk(id, data!, length)
}

private let h2uOnStreamClose: nghttp2_on_stream_close_callback = { _, id, errorCode, user in
    upstreamSession(user).streamClosed(id, errorCode)
}
