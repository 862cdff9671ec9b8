#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Per-reactor access log: logfmt lines collected in memory and written to stdout in one
/// `write(2)` every 200 ms or 32 KiB, so logging costs no syscall per request.
final class AccessLogBuffer {
    private var buffer: [UInt8] = []
    private var scheduled = false
    let reactor: Reactor

    init(reactor: Reactor) {
        self.reactor = reactor
        buffer.reserveCapacity(64 * 1024)
    }

    func append(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 32 * 1024 {
            flush()
        } else if !scheduled {
            scheduled = true
            reactor.schedule(at: .now() + .milliseconds(200)) { [self] in
                self.scheduled = false
                self.flush()
            }
        }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(1, raw.baseAddress! + offset, raw.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// A logfmt value: quoted when it holds spaces, quotes or `=`.
    static func value(_ s: String) -> String {
        if s.isEmpty { return "\"\"" }
        if s.utf8.allSatisfy({ $0 > 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "=") && $0 < 0x7F }) { return s }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c.value < 0x20 ? "?" : c)
            }
        }
        return out + "\""
    }
}

@available(*, unavailable)
extension AccessLogBuffer: Sendable {}
