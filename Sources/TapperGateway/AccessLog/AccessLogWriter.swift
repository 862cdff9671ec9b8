#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import Dispatch
import NIOConcurrencyHelpers
import Synchronization

/// Writes access-log chunks to a file descriptor from a thread of its own, so a reactor never
/// waits for the log's reader.
///
/// The queue between the reactors and the writer is bounded by bytes: a chunk that does not fit
/// (the reader is slower than the traffic, or stalled: a full pipe, a stopped terminal) is
/// dropped whole and its lines are counted in ``droppedLines``, which `/_tapper/metrics` reports
/// as `tapper_access_log_dropped_total`. Bytes count against the bound until `write(2)` took them.
///
/// One writer per file descriptor: the reactors of every gateway in the process share
/// ``standardOutput``, which also keeps their chunks from interleaving mid-line.
public final class AccessLogWriter: Sendable {
    /// Where the lines go. Not closed by the writer.
    let fd: Int32
    /// The most bytes queued or being written at once.
    public let capacity: Int
    private let queue: DispatchQueue
    private let state = Mutex(State())

    private struct State {
        var queuedBytes = 0
        var droppedLines = 0
    }

    /// The process's standard output, with room for 4 MiB of lines (a few seconds of logs at
    /// high request rates).
    public static let standardOutput = AccessLogWriter(fd: 1, capacity: 4 << 20)

    /// - Parameters:
    ///   - fd: the file descriptor to write to, blocking or not.
    ///   - capacity: the bound on bytes queued or being written.
    init(fd: Int32, capacity: Int) {
        self.fd = fd
        self.capacity = capacity
        queue = DispatchQueue(label: "tapper.access-log.\(fd)")
    }

    /// Lines dropped because the queue was full, or because `write(2)` failed.
    public var droppedLines: Int { state.withLock { $0.droppedLines } }

    /// Bytes queued or being written now.
    var queuedBytes: Int { state.withLock { $0.queuedBytes } }

    /// Queues `chunk` (whole lines, `lines` of them) for writing, or drops and counts it when it
    /// does not fit. Never blocks beyond a short lock.
    /// - Returns: whether the chunk was queued.
    @discardableResult
    func enqueue(_ chunk: [UInt8], lines: Int) -> Bool {
        let size = chunk.count
        let accepted = state.withLock { s -> Bool in
            guard s.queuedBytes + size <= capacity else {
                s.droppedLines += lines
                return false
            }
            s.queuedBytes += size
            return true
        }
        guard accepted else { return false }
        queue.async { [self] in
            let unwritten = write(chunk)
            state.withLock { s in
                s.queuedBytes -= size
                s.droppedLines += unwritten
            }
        }
        return true
    }

    /// Writes `chunk` (blocking), waiting out `EAGAIN` on a non-blocking descriptor.
    /// - Returns: the lines that could not be written.
    private func write(_ chunk: [UInt8]) -> Int {
        chunk.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 {
                    offset += n
                    continue
                }
                let error = errno
                if n < 0 && error == EINTR { continue }
                if n < 0 && (error == EAGAIN || error == EWOULDBLOCK) {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = poll(&p, 1, -1)
                    continue
                }
                // The rest is lost: count its lines (the last one may be partly written).
                return raw[offset...].reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            }
            return 0
        }
    }

    /// Waits until every chunk queued before the call is written, or `timeout` passes (a
    /// stalled reader must not hold up shutdown).
    /// - Returns: true when everything was written in time.
    @discardableResult
    public func drain(timeout: Duration = .seconds(2)) async -> Bool {
        let once = NIOLockedValueBox<CheckedContinuation<Bool, Never>?>(nil)
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            once.withLockedValue { $0 = continuation }
            queue.async { once.withLockedValue { $0.take() }?.resume(returning: true) }
            let (seconds, attoseconds) = timeout.components
            let nanos = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanos)) {
                once.withLockedValue { $0.take() }?.resume(returning: false)
            }
        }
    }
}
