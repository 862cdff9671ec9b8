#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CEpoll
import CTapperTLS
import NIOCore

/// What a ``Connection`` tells the code that owns it. All calls come on the connection's reactor.
protocol ConnectionHandler: AnyObject {
    /// Bytes read. The buffer is the reactor's read buffer: keeping it (or a slice) is allowed,
    /// and only costs the next read a fresh allocation.
    func connectionRead(_ buffer: ByteBuffer)
    /// The reads of one readiness event are done (flush what they produced).
    func connectionReadComplete()
    /// Asked before every read: true holds reads until ``Connection/readIfReady()``.
    var holdsReads: Bool { get }
    /// The pending output crossed the high (false) or low (true) watermark.
    func connectionWritabilityChanged(_ writable: Bool)
    /// The connection is closed: by the peer (`error` nil for an orderly end), by an error
    /// (`errno`), or by ``Connection/close()``. Called once, after the current events.
    func connectionClosed(error: Int32?)
    /// The peer ended its output (read returned 0) on a connection that allows half-close
    /// (``Connection/halfClose``); what is queued can still be sent.
    func connectionInputEnded()
}

extension ConnectionHandler {
    func connectionInputEnded() {}
}

/// A non-blocking TCP socket on a ``Reactor``: reads until drained (edge-triggered), queues
/// writes until ``flush()``, and tracks pending output against watermarks for backpressure.
///
/// Registered once for input, output and peer hang-up in edge-triggered mode, so holding reads
/// or waiting for output never costs an `epoll_ctl`.
final class Connection: PollTarget {
    let fd: Int32
    unowned let reactor: Reactor
    var handler: (any ConnectionHandler)?
    private(set) var isOpen = true
    /// The socket may have unread bytes (set by an input event, cleared by a short read).
    private var readable = false
    /// The peer's end of stream was reported: a short read no longer means "drained", reads
    /// go on until they return 0 (no further event would come for it).
    private var peerEnded = false
    private var readScheduled = false
    private var queue: [ByteBuffer] = []
    private var queueHead = 0
    private(set) var pendingBytes = 0
    private(set) var isWritable = true
    /// A write stopped short: the rest goes out on the next output event.
    private var waitingForOutput = false
    private var closeWhenFlushed = false
    /// Set while a non-blocking connect is in progress.
    var onConnected: ((Int32?) -> Void)?
    /// The peer's end of stream does not close the connection: the handler hears
    /// ``ConnectionHandler/connectionInputEnded()`` and output goes on (a tunnel's half-close).
    var halfClose = false
    /// The peer ended its output (with ``halfClose``).
    private(set) var inputEnded = false
    /// ``shutdownOutput()`` waits for the queue to drain; `outputShut`: it happened.
    private var shutdownWhenFlushed = false
    private(set) var outputShut = false
    /// Set on an HTTPS client connection before its first event: reads and writes go through
    /// OpenSSL on the socket (the handshake runs inside the first of them).
    var tls: TLSSession?
    /// A TLS read needs the socket writable first (handshake output that did not fit).
    private var readWaitsForOutput = false
    /// A TLS write needs input first (OpenSSL reading a handshake message mid-write).
    private var writeWaitsForInput = false
    /// Set on a virtual connection: HTTP/2 seen as an HTTP/1.1 connection by its handler (a
    /// client's stream served by a ``ProxyHandler``, or an h2c upstream's streams used by an
    /// ``UpstreamHandler``). It has no socket: reads come from the stream
    /// (``VirtualStream/deliverInbound()``), flushes hand the queue to it, and close tells it.
    private(set) var stream: (any VirtualStream)?

    static let highWatermark = 64 * 1024
    static let lowWatermark = 32 * 1024
    static let events = UInt32(EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue) | EPOLLET.rawValue
    /// Reads per readiness event before other connections get their turn.
    static let readsPerEvent = 4

    /// Takes over `fd` (non-blocking) and registers it with `reactor`.
    init?(fd: Int32, reactor: Reactor) {
        self.fd = fd
        self.reactor = reactor
        guard reactor.register(fd, self, events: Self.events) else {
            Glibc.close(fd)
            return nil
        }
    }

    /// A virtual connection for `stream` (see ``stream``); not registered with the reactor.
    init(virtualFor stream: any VirtualStream, reactor: Reactor) {
        self.fd = -1
        self.reactor = reactor
        self.stream = stream
    }

    func ready(events: UInt32) {
        if let onConnected {
            guard events & UInt32(EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { return }
            self.onConnected = nil
            let error = pendingError()
            onConnected(error == 0 ? nil : error)
            if error != 0 || !isOpen { return }
        }
        if events & UInt32(EPOLLERR.rawValue) != 0 {
            let error = pendingError()
            close(error: error == 0 ? ECONNRESET : error)
            return
        }
        if events & UInt32(EPOLLOUT.rawValue) != 0 && waitingForOutput {
            waitingForOutput = false
            writeOut()
            guard isOpen else { return }
        }
        if tls != nil {
            if events & UInt32(EPOLLOUT.rawValue) != 0 && readWaitsForOutput {
                readWaitsForOutput = false
                readable = true
                readLoop()
                guard isOpen else { return }
            }
            if events & UInt32(EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 && writeWaitsForInput {
                writeWaitsForInput = false
                writeOut()
                guard isOpen else { return }
            }
        }
        if events & UInt32(EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 && !inputEnded {
            readable = true
            if events & UInt32(EPOLLRDHUP.rawValue | EPOLLHUP.rawValue) != 0 { peerEnded = true }
            if events & UInt32(EPOLLHUP.rawValue) != 0, handler?.holdsReads ?? false {
                // Both directions are gone: nothing held can be delivered any more.
                close(error: ECONNRESET)
                return
            }
            readLoop()
        }
    }

    /// The socket's pending error (`SO_ERROR`), 0 for none.
    private func pendingError() -> Int32 {
        var error: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len)
        return error
    }

    // MARK: reading

    /// Reads now if bytes may be waiting and the handler no longer holds reads (after the
    /// current events, so a handler can call it from anywhere).
    func readIfReady() {
        guard isOpen, readable, !readScheduled else { return }
        readScheduled = true
        reactor.later { [self] in
            readScheduled = false
            if let stream {
                stream.deliverInbound()
            } else {
                readLoop()
            }
        }
    }

    /// A virtual connection's stream has bytes for the handler: they are delivered now unless
    /// it holds reads (then ``readIfReady()`` delivers them once it asks).
    func virtualInputArrived() { readable = true }
    /// The stream delivered all it had.
    func virtualInputDrained() { readable = false }

    /// The stream sent enough of what it was given: the handler may produce more.
    func virtualOutputDrained() {
        guard isOpen, !isWritable, let stream, stream.backlog <= Self.lowWatermark else { return }
        isWritable = true
        handler?.connectionWritabilityChanged(true)
    }

    private func readLoop() {
        var reads = 0
        var delivered = false
        while isOpen && readable {
            guard let handler, !handler.holdsReads else { break }
            if reads == Self.readsPerEvent {
                readIfReady()
                break
            }
            reads += 1
            var buffer = reactor.readBuffer.take() ?? ByteBufferAllocator().buffer(capacity: Reactor.readSize)
            buffer.clear()
            if let tls {
                let outcome = readTLS(tls, into: &buffer)
                if buffer.readableBytes > 0 {
                    reactor.readBuffer = buffer
                    delivered = true
                    handler.connectionRead(buffer)
                    guard isOpen else { return }
                } else {
                    reactor.readBuffer = buffer
                }
                switch outcome {
                case .more: continue
                case .drained: readable = false
                case .needsOutput:
                    readable = false
                    readWaitsForOutput = true
                case .ended:
                    guard halfClose else {
                        close(error: nil)
                        return
                    }
                    inputEnded = true
                    readable = false
                    if delivered { handler.connectionReadComplete() }
                    handler.connectionInputEnded()
                    return
                case .failed:
                    close(error: ECONNRESET)
                    return
                }
                continue
            }
            var result = 0
            var space = 0
            let fd = self.fd
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { raw in
                space = raw.count
                result = Glibc.read(fd, raw.baseAddress, raw.count)
                return max(result, 0)
            }
            if result > 0 {
                if result < space && !peerEnded { readable = false }
                reactor.readBuffer = buffer
                delivered = true
                handler.connectionRead(buffer)
                continue
            }
            let error = errno
            buffer.clear()
            reactor.readBuffer = buffer
            if result == 0 {
                guard halfClose else {
                    close(error: nil)
                    return
                }
                inputEnded = true
                readable = false
                if delivered { handler.connectionReadComplete() }
                handler.connectionInputEnded()
                return
            }
            switch error {
            case EAGAIN, EWOULDBLOCK:
                readable = false
            case EINTR:
                continue
            default:
                close(error: error)
                return
            }
        }
        if delivered, isOpen { handler?.connectionReadComplete() }
    }

    private enum TLSReadOutcome { case more, drained, needsOutput, ended, failed }

    /// Decrypts what the socket holds into `buffer`, record after record, until OpenSSL wants
    /// more input (`drained`), the buffer has no room for another full record (`more`), or the
    /// stream ended or failed. Input held by read-ahead counts as unread (`more`).
    private func readTLS(_ tls: TLSSession, into buffer: inout ByteBuffer) -> TLSReadOutcome {
        var outcome = TLSReadOutcome.more
        let conn = tls.conn
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { raw in
            var used = 0
            while true {
                let room = raw.count - used
                if room < 16 * 1024 + 256 && used > 0 { break }
                let r = tapper_tls_read(conn, raw.baseAddress! + used, Int32(min(room, Int(Int32.max))))
                if r > 0 {
                    used += Int(r)
                    continue
                }
                switch r {
                case Int32(TAPPER_TLS_WANT_READ): outcome = .drained
                case Int32(TAPPER_TLS_WANT_WRITE): outcome = .needsOutput
                case Int32(TAPPER_TLS_CLOSED): outcome = .ended
                default: outcome = .failed
                }
                break
            }
            return used
        }
        return outcome
    }

    // MARK: writing

    /// Queues `buffer`; nothing is sent before ``flush()``.
    func write(_ buffer: ByteBuffer) {
        guard isOpen, !outputShut, buffer.readableBytes > 0 else { return }
        queue.append(buffer)
        pendingBytes += buffer.readableBytes
        if isWritable && pendingBytes > Self.highWatermark {
            isWritable = false
            handler?.connectionWritabilityChanged(false)
        }
    }

    /// Sends what is queued, as far as the socket takes it.
    func flush() {
        guard isOpen, !waitingForOutput, !writeWaitsForInput, queueHead < queue.count else { return }
        writeOut()
    }

    /// Closes once everything queued is sent (a last response); at most `linger` later.
    func closeAfterFlush(linger: TimeAmount = .seconds(5)) {
        guard isOpen else { return }
        flush()
        guard isOpen else { return }
        if queueHead == queue.count {
            close()
            return
        }
        closeWhenFlushed = true
        reactor.schedule(at: .now() + linger) { [weak self] in self?.close() }
    }

    /// Ends this side's output (`shutdown(SHUT_WR)`) once what is queued is sent; reading goes on.
    func shutdownOutput() {
        guard isOpen, !outputShut else { return }
        if queueHead == queue.count {
            shutOutput()
        } else {
            shutdownWhenFlushed = true
            flush()
        }
    }

    /// `shutdown(SHUT_WR)`, after TLS's close_notify on an HTTPS connection.
    private func shutOutput() {
        outputShut = true
        if stream != nil { return }
        if let tls { tapper_tls_shutdown(tls.conn) }
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    private func writeOut() {
        if let stream {
            writeOutVirtual(stream)
            return
        }
        if let tls {
            writeOutTLS(tls)
            return
        }
        while queueHead < queue.count {
            let count = queue.count - queueHead
            var written = 0
            if count == 1 {
                written = queue[queueHead].withUnsafeReadableBytes { raw in
                    send(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
                }
            } else {
                let n = min(count, 64)
                written = withUnsafeTemporaryAllocation(of: iovec.self, capacity: n) { iov in
                    for i in 0..<n {
                        // The queue keeps each buffer alive and unchanged during the call.
                        queue[queueHead + i].withUnsafeReadableBytes { raw in
                            iov[i] = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
                        }
                    }
                    var msg = msghdr()
                    msg.msg_iov = iov.baseAddress
                    msg.msg_iovlen = n
                    return sendmsg(fd, &msg, Int32(MSG_NOSIGNAL))
                }
            }
            if written < 0 {
                let error = errno
                if error == EINTR { continue }
                if error == EAGAIN || error == EWOULDBLOCK {
                    waitingForOutput = true
                    break
                }
                close(error: error)
                return
            }
            consume(written)
            if queueHead < queue.count {
                // The socket took less than offered: it is full until the next output event.
                waitingForOutput = true
                break
            }
        }
        afterWrites()
    }

    /// A virtual connection's flush: everything queued goes to the stream, which holds what the
    /// HTTP/2 peer has not taken yet; its backlog is this connection's writability.
    private func writeOutVirtual(_ stream: any VirtualStream) {
        for i in queueHead..<queue.count { stream.outputBytes(queue[i]) }
        queue.removeAll(keepingCapacity: true)
        queueHead = 0
        pendingBytes = 0
        let writable = stream.backlog <= Self.highWatermark
        if writable != isWritable {
            isWritable = writable
            handler?.connectionWritabilityChanged(writable)
        }
    }

    /// A TLS record carries at most this much plaintext: small queued buffers are coalesced up
    /// to it (one record, one send) instead of one record each.
    private static let tlsRecordBytes = 16 * 1024

    /// ``writeOut()`` through OpenSSL: each call offers the queue's front (its first buffer, or
    /// the first 16 KiB of several copied together). A write that has to wait is offered again
    /// with the same leading bytes, as OpenSSL requires (the queue only grows at its end).
    private func writeOutTLS(_ tls: TLSSession) {
        let conn = tls.conn
        while queueHead < queue.count {
            var r: Int32
            let first = queue[queueHead].readableBytes
            if first >= Self.tlsRecordBytes || queueHead + 1 == queue.count {
                r = queue[queueHead].withUnsafeReadableBytes { raw in
                    tapper_tls_write(conn, raw.baseAddress, Int32(min(raw.count, Int(Int32.max))))
                }
            } else {
                var staging = reactor.tlsStaging.take() ?? ByteBufferAllocator().buffer(capacity: Self.tlsRecordBytes)
                staging.clear()
                var i = queueHead
                while i < queue.count && staging.readableBytes < Self.tlsRecordBytes {
                    let take = min(queue[i].readableBytes, Self.tlsRecordBytes - staging.readableBytes)
                    staging.writeImmutableBuffer(queue[i].getSlice(at: queue[i].readerIndex, length: take)!)
                    i += 1
                }
                r = staging.withUnsafeReadableBytes { raw in tapper_tls_write(conn, raw.baseAddress, Int32(raw.count)) }
                reactor.tlsStaging = staging
            }
            if r > 0 {
                consume(Int(r))
                continue
            }
            switch r {
            case Int32(TAPPER_TLS_WANT_WRITE):
                waitingForOutput = true
            case Int32(TAPPER_TLS_WANT_READ):
                writeWaitsForInput = true
            default:
                close(error: r == Int32(TAPPER_TLS_CLOSED) ? EPIPE : ECONNRESET)
                return
            }
            break
        }
        afterWrites()
    }

    /// What follows a round of writes: compacting what waits, closing or shutting down once
    /// the queue is empty, and the watermark.
    private func afterWrites() {
        if waitingForOutput || writeWaitsForInput {
            // What waits for the peer should not pin whole read buffers.
            for i in queueHead..<queue.count { queue[i] = queue[i].compacted() }
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
            if closeWhenFlushed {
                close()
                return
            }
            if shutdownWhenFlushed {
                shutdownWhenFlushed = false
                shutOutput()
            }
        } else if queueHead >= 32 {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        if !isWritable && pendingBytes <= Self.lowWatermark {
            isWritable = true
            handler?.connectionWritabilityChanged(true)
        }
    }

    private func consume(_ bytes: Int) {
        var left = bytes
        pendingBytes -= bytes
        while left > 0 {
            let n = queue[queueHead].readableBytes
            if n <= left {
                queue[queueHead] = ByteBuffer()
                queueHead += 1
                left -= n
            } else {
                queue[queueHead].moveReaderIndex(forwardBy: left)
                left = 0
            }
        }
    }

    // MARK: closing

    /// Closes the socket now; queued output is dropped. The handler hears of it after the
    /// current events.
    func close(error: Int32? = nil) {
        guard isOpen else { return }
        isOpen = false
        readable = false
        if let tls {
            // An orderly end tells the peer the stream is complete (close_notify).
            if error == nil && !outputShut { tapper_tls_shutdown(tls.conn) }
            self.tls = nil
        }
        if let stream {
            self.stream = nil
            stream.virtualClosed(error: error)
        } else {
            reactor.forget(fd)
            Glibc.close(fd)
        }
        queue = []
        queueHead = 0
        pendingBytes = 0
        if let onConnected {
            self.onConnected = nil
            onConnected(error ?? ECONNABORTED)
        }
        reactor.later { [self] in
            let h = handler
            handler = nil
            h?.connectionClosed(error: error)
        }
    }
}

@available(*, unavailable)
extension Connection: Sendable {}

extension ByteBuffer {
    /// The bytes in a buffer of their own when this one is a small slice of a large storage
    /// (the reactor reads into 64 KiB): bytes kept for a while (a partial head, a body waiting
    /// for its upstream or kept for a retry, output a slow peer has not taken) then hold only
    /// what they need, however small the reads that brought them.
    func compacted() -> ByteBuffer {
        let n = readableBytes
        guard storageCapacity > 4 * n + 4096 else { return self }
        var copy = ByteBufferAllocator().buffer(capacity: n)
        copy.writeImmutableBuffer(self)
        return copy
    }
}
