import Foundation
import TapperCore
#if canImport(Glibc)
import Glibc
#endif

/// Sends raw bytes to 127.0.0.1:port and reads until the server closes or `timeout` passes —
/// for requests no well-behaved client would send (smuggling, malformed heads, slow clients).
public enum RawHTTP {
    public struct Result: Sendable {
        public var text: String
        /// True when the server closed the connection.
        public var closed: Bool
        /// The status code of the first response, if any.
        public var status: Int? {
            guard text.hasPrefix("HTTP/1."), text.count >= 12 else { return nil }
            return Int(text.dropFirst(9).prefix(3))
        }
    }

    /// - Parameters:
    ///   - chunks: written in order, with `pause` between them (to act as a slow client).
    public static func exchange(port: Int, _ chunks: [String], pause: Duration = .zero, timeout: Duration = .seconds(5)) async throws -> Result {
        try await Task.detached {
            try blockingExchange(port: port, chunks.map { Array($0.utf8) }, pause: pause, timeout: timeout)
        }.value
    }

    static func blockingExchange(port: Int, _ chunks: [[UInt8]], pause: Duration, timeout: Duration) throws -> Result {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { throw TestFailure("connect to \(port) failed") }
        for (i, chunk) in chunks.enumerated() {
            if i > 0 && pause > .zero { Thread.sleep(forTimeInterval: pause.inSeconds) }
            var sent = 0
            while sent < chunk.count {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + sent, chunk.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return Result(text: "", closed: true) }
                sent += n
            }
        }
        let deadline = ContinuousClock.now + timeout
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n == 0 { return Result(text: String(decoding: received, as: UTF8.self), closed: true) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return Result(text: String(decoding: received, as: UTF8.self), closed: true)
            }
            received.append(contentsOf: buf[0..<n])
        }
        return Result(text: String(decoding: received, as: UTF8.self), closed: false)
    }
}
