import Foundation
import NIOCore
import Synchronization
import TapperTesting
@testable import TapperGateway

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a started reactor of its own, stopped afterwards.
func withReactor(_ body: (Reactor) async throws -> Void) async throws {
    let reactor = Reactor.start(count: 1)[0]
    do {
        try await body(reactor)
    } catch {
        await reactor.stop()
        throw error
    }
    await reactor.stop()
}

/// A connected pair of non-blocking Unix stream sockets: the first end goes to a ``Connection``,
/// the test drives the second.
func socketPair() throws -> (local: Int32, peer: Int32) {
    var fds: [Int32] = [-1, -1]
    let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw TestFailure("socketpair failed: errno \(errno)") }
    return (fds[0], fds[1])
}

/// A socket pair one of whose ends has the number `fd` (just closed), as the local end. The
/// kernel hands out the lowest free numbers, so pairs are opened until one gets `fd`; the pairs
/// opened on the way are closed again.
func socketPair(reusing fd: Int32) throws -> (local: Int32, peer: Int32) {
    var extras: [Int32] = []
    defer { for e in extras { close(e) } }
    for _ in 0..<64 {
        let pair = try socketPair()
        if pair.local == fd { return pair }
        if pair.peer == fd { return (pair.peer, pair.local) }
        extras += [pair.local, pair.peer]
    }
    throw TestFailure("descriptor \(fd) was not handed out again (another thread took it?)")
}

/// `n` bytes that do not repeat every 256, so a lost or reordered chunk shows.
func pattern(_ n: Int, from start: Int = 0) -> [UInt8] {
    (start..<start + n).map { UInt8(truncatingIfNeeded: $0 &+ ($0 >> 8) &* 7) }
}

/// Writes `pattern` into `fd` until the socket is full (EAGAIN). Returns how many bytes it took.
func fillSocket(_ fd: Int32) -> Int {
    var sent = 0
    while true {
        let chunk = pattern(64 * 1024, from: sent)
        let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return sent }
        sent += n
    }
}

/// Sends `text` on socket `fd` (no SIGPIPE should the other end be gone: the test fails instead).
@discardableResult
func sendText(_ fd: Int32, _ text: String) -> Int {
    Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
}

/// Runs blocking `body` on a thread of its own (never on the test's cooperative threads).
func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

/// Reads `fd` (non-blocking) until `count` bytes arrived, end of stream, or `timeout`.
/// - Returns: the bytes and whether end of stream was seen.
func readSocket(_ fd: Int32, upTo count: Int = .max, timeout: Duration = .seconds(10)) -> (bytes: [UInt8], eof: Bool) {
    let deadline = ContinuousClock.now + timeout
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 256 * 1024)
    while bytes.count < count {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return (bytes, false) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        _ = poll(&p, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1))
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, count - bytes.count)) }
        if n > 0 {
            bytes += buffer[..<n]
        } else if n == 0 {
            return (bytes, true)
        } else if errno != EAGAIN && errno != EINTR {
            return (bytes, true)
        }
    }
    return (bytes, false)
}

/// Records what a ``Connection`` tells its handler. Lives on the reactor.
final class RecordingHandler: ConnectionHandler {
    var received: [UInt8] = []
    var reads = 0
    var readCompletes = 0
    var holdsReads = false
    var writability: [Bool] = []
    /// `nil` while open; `.some(nil)` after an orderly close, `.some(errno)` after an error.
    var closed: Int32?? = nil
    var onRead: (() -> Void)?

    func connectionRead(_ buffer: ByteBuffer) {
        reads += 1
        received += buffer.readableBytesView
        onRead?()
    }

    func connectionReadComplete() { readCompletes += 1 }
    func connectionWritabilityChanged(_ writable: Bool) { writability.append(writable) }
    func connectionClosed(error: Int32?) { closed = .some(error) }
}

/// A value shared between the reactor and the test, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) { self.value = Mutex(value) }

    func get() -> Value { value.withLock { $0 } }
    func set(_ newValue: Value) { value.withLock { $0 = newValue } }
    func update(_ change: (inout Value) -> Void) { value.withLock { change(&$0) } }
}
