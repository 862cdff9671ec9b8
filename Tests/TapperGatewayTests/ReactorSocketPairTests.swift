import Dispatch
import NIOCore
import Testing
import TapperTesting
@testable import TapperGateway

#if canImport(Glibc)
import Glibc
#endif

/// ``Connection`` and ``Reactor`` over `socketpair(2)`: the edge-triggered read loop, the
/// EAGAIN/writability path, closing with output queued, and descriptor numbers reused while
/// the old connection's events and timers are still around.
@Suite struct ReactorSocketPairTests {
    /// Opens a connection on `fd` with `handler`, on the reactor.
    private func open(_ fd: Int32, _ handler: RecordingHandler, on reactor: Reactor) async throws -> ReactorBound<Connection> {
        let h = ReactorBound(handler)
        let opened = await reactor.submit { () -> ReactorBound<Connection>? in
            guard let c = Connection(fd: fd, reactor: reactor) else { return nil }
            c.handler = h.value
            return ReactorBound(c)
        }
        return try #require(opened)
    }

    /// More bytes than one read buffer, and than one readiness event's reads, all waiting in the
    /// socket before the connection registers: epoll reports one edge, so the connection must
    /// read on (and come back for the rest) until EAGAIN, or the bytes sit there for good.
    @Test func bytesBeyondTheReadBufferAreAllDeliveredFromOneEdge() async throws {
        try await withReactor { reactor in
            let (local, peer) = try socketPair()
            defer { close(peer) }
            var size: Int32 = 1 << 20
            setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            let sent = fillSocket(peer)
            #expect(sent > Connection.readsPerEvent * Reactor.readSize, "the socket took only \(sent) bytes")
            let handler = RecordingHandler()
            let h = ReactorBound(handler)
            let c = try await open(local, handler, on: reactor)
            try await poll("all \(sent) bytes are read", timeout: .seconds(5)) { await reactor.submit { h.value.received.count } >= sent }
            let (same, reads, completes) = await reactor.submit { (h.value.received == pattern(sent), h.value.reads, h.value.readCompletes) }
            #expect(same, "the bytes arrived out of order or changed")
            #expect(reads >= sent / Reactor.readSize)
            #expect(completes >= 2, "one event's reads are capped; the rest comes in a later round")
            await reactor.submit { c.value.close() }
        }
    }

    /// Output beyond what the socket takes is queued (EAGAIN), the handler hears the high
    /// watermark, and the queue goes out as the peer reads, with the low watermark reported.
    @Test func writesBeyondTheSocketBufferAreQueuedAndFlushedWhenThePeerDrains() async throws {
        try await withReactor { reactor in
            let (local, peer) = try socketPair()
            defer { close(peer) }
            let handler = RecordingHandler()
            let h = ReactorBound(handler)
            let c = try await open(local, handler, on: reactor)
            let total = 2 << 20
            let queued = await reactor.submit { () -> Int in
                c.value.write(ByteBuffer(bytes: pattern(total)))
                c.value.flush()
                return c.value.pendingBytes
            }
            #expect(queued > 0, "the socket took all of \(total) bytes at once")
            #expect(await reactor.submit { (h.value.writability, c.value.isWritable) } == ([false], false))
            let read = await onThread { readSocket(peer, upTo: total) }
            #expect(read.bytes.count == total)
            let same = read.bytes == pattern(total)
            #expect(same, "the bytes arrived out of order or changed")
            try await poll("the queue is empty") { await reactor.submit { c.value.pendingBytes } == 0 }
            #expect(await reactor.submit { (h.value.writability, c.value.isWritable) } == ([false, true], true))
            await reactor.submit { c.value.close() }
        }
    }

    /// `closeAfterFlush` with output the peer has not taken: the connection stays open until the
    /// queue is out, then the peer reads every byte followed by end of stream.
    @Test func closeAfterFlushDeliversQueuedOutputThenEndOfStream() async throws {
        try await withReactor { reactor in
            let (local, peer) = try socketPair()
            defer { close(peer) }
            let handler = RecordingHandler()
            let h = ReactorBound(handler)
            let c = try await open(local, handler, on: reactor)
            let total = 2 << 20
            let state = await reactor.submit { () -> (open: Bool, pending: Int) in
                c.value.write(ByteBuffer(bytes: pattern(total)))
                c.value.closeAfterFlush()
                return (c.value.isOpen, c.value.pendingBytes)
            }
            #expect(state.open && state.pending > 0, "nothing was left queued: the test proves nothing")
            let read = await onThread { readSocket(peer) }
            let eof = read.eof
            #expect(eof, "no end of stream")
            #expect(read.bytes.count == total)
            let same = read.bytes == pattern(total)
            #expect(same, "the bytes arrived out of order or changed")
            try await poll("the handler hears of the close") { await reactor.submit { h.value.closed != nil } }
            #expect(await reactor.submit { h.value.closed } == .some(nil))
        }
    }

    /// `close()` drops what is queued, but the peer still gets end of stream at once.
    @Test func closeDropsQueuedOutputAndEndsTheStream() async throws {
        try await withReactor { reactor in
            let (local, peer) = try socketPair()
            defer { close(peer) }
            let handler = RecordingHandler()
            let c = try await open(local, handler, on: reactor)
            let total = 2 << 20
            let pending = await reactor.submit { () -> Int in
                c.value.write(ByteBuffer(bytes: pattern(total)))
                c.value.flush()
                let pending = c.value.pendingBytes
                c.value.close()
                return pending
            }
            #expect(pending > 0)
            let read = await onThread { readSocket(peer) }
            let eof = read.eof
            #expect(eof, "no end of stream")
            #expect(read.bytes.count == total - pending)
            let same = read.bytes == pattern(total - pending)
            #expect(same)
        }
    }

    /// Two connections become ready in one `epoll_wait` batch; handling the first closes the
    /// second and opens a new connection that gets the same descriptor number. The second's
    /// hang-up, still in the batch, must not reach the new connection (which holds its reads, so
    /// a hang-up would close it).
    @Test func aReusedDescriptorDoesNotGetTheOldConnectionsEvents() async throws {
        try await withReactor { reactor in
            try await untilTheNumberIsReused { try await reusedDescriptorEvents(reactor) }
        }
    }

    /// Runs a descriptor-reuse scenario until it got the number it closed: another test's thread
    /// may take the number in the moment between the close and the new socket.
    private func untilTheNumberIsReused(_ scenario: () async throws -> Bool) async throws {
        for _ in 0..<10 {
            if try await scenario() { return }
        }
        Issue.record("in 10 tries, another thread always took the closed descriptor number first")
    }

    /// - Returns: false when the new connection did not get the old number (nothing was tested).
    private func reusedDescriptorEvents(_ reactor: Reactor) async throws -> Bool {
        do {
            let (triggerLocal, triggerPeer) = try socketPair()
            let (oldLocal, oldPeer) = try socketPair()
            defer { close(triggerPeer) }
            let trigger = RecordingHandler()
            let old = RecordingHandler()
            let new = RecordingHandler()
            new.holdsReads = true
            let t = try await open(triggerLocal, trigger, on: reactor)
            let o = try await open(oldLocal, old, on: reactor)
            let n = Locked<(conn: ReactorBound<Connection>?, fd: Int32, peer: Int32, oldWasOpen: Bool)>((nil, -1, -1, false))
            let h = ReactorBound((trigger, new))
            await reactor.submit {
                let newHandler = h.value.1
                h.value.0.onRead = {
                    let oldWasOpen = o.value.isOpen
                    o.value.close()
                    guard let pair = try? socketPair(reusing: oldLocal), let c = Connection(fd: pair.local, reactor: reactor) else { return }
                    c.handler = newHandler
                    n.set((ReactorBound(c), pair.local, pair.peer, oldWasOpen))
                }
            }
            // Both become ready while the reactor is busy, so one epoll_wait reports both, in
            // the order they became ready: the trigger first.
            let gate = DispatchSemaphore(value: 0)
            reactor.execute { gate.wait() }
            sendText(triggerPeer, "x")
            close(oldPeer)
            gate.signal()
            try await poll("the trigger is read") { await reactor.submit { h.value.0.reads } > 0 }
            let swapped = n.get()
            guard let c = swapped.conn else {
                await reactor.submit { t.value.close() }
                return false
            }
            defer { close(swapped.peer) }
            #expect(swapped.fd == oldLocal, "the new connection did not reuse the descriptor number")
            #expect(swapped.oldWasOpen, "the old connection's event came first: the test proves nothing")
            // The batch is done by the time a task submitted now runs.
            #expect(await reactor.submit { (c.value.isOpen, h.value.1.closed == nil) } == (true, true))
            // And the new connection works: it reads once it stops holding.
            sendText(swapped.peer, "hello")
            await reactor.submit {
                h.value.1.holdsReads = false
                c.value.readIfReady()
            }
            try await poll("the new connection reads") { await reactor.submit { h.value.1.received } == Array("hello".utf8) }
            await reactor.submit {
                c.value.close()
                t.value.close()
            }
            return true
        }
    }

    /// A connection closed while its `closeAfterFlush` linger timer is pending, then its number
    /// reused: when the old timer fires it must not close the new connection's descriptor.
    @Test func aReusedDescriptorDoesNotGetTheOldConnectionsTimers() async throws {
        try await withReactor { reactor in
            try await untilTheNumberIsReused { try await reusedDescriptorTimers(reactor) }
        }
    }

    /// - Returns: false when the new connection did not get the old number (nothing was tested).
    private func reusedDescriptorTimers(_ reactor: Reactor) async throws -> Bool {
        do {
            let (oldLocal, oldPeer) = try socketPair()
            let old = RecordingHandler()
            let o = try await open(oldLocal, old, on: reactor)
            let new = RecordingHandler()
            let h = ReactorBound(new)
            // Closed and reopened in one go on the reactor, so no other thread takes the number.
            let swapped = await reactor.submit { () -> (lingering: Bool, conn: ReactorBound<Connection>?, fd: Int32, peer: Int32) in
                o.value.write(ByteBuffer(bytes: pattern(2 << 20)))
                o.value.closeAfterFlush(linger: .milliseconds(50))
                let lingering = o.value.isOpen
                o.value.close()
                guard let pair = try? socketPair(reusing: oldLocal), let c = Connection(fd: pair.local, reactor: reactor) else { return (lingering, nil, -1, -1) }
                c.handler = h.value
                return (lingering, ReactorBound(c), pair.local, pair.peer)
            }
            close(oldPeer)
            #expect(swapped.lingering, "the connection closed at once: no timer is pending")
            guard let c = swapped.conn else { return false }
            let (newLocal, newPeer) = (swapped.fd, swapped.peer)
            defer { close(newPeer) }
            #expect(newLocal == oldLocal, "the new connection did not reuse the descriptor number")
            // Wait past the old linger on the reactor's own timers.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                reactor.execute { reactor.schedule(at: .now() + .milliseconds(200)) { done.resume() } }
            }
            #expect(await reactor.submit { (c.value.isOpen, h.value.closed == nil) } == (true, true))
            #expect(fcntl(newLocal, F_GETFD) != -1, "the new connection's descriptor was closed")
            sendText(newPeer, "ping")
            try await poll("the new connection reads") { await reactor.submit { h.value.received } == Array("ping".utf8) }
            await reactor.submit { c.value.close() }
            return true
        }
    }
}
