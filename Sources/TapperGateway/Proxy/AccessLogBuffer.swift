import NIOCore

/// Per-reactor access log: logfmt lines collected in memory and handed to an
/// ``AccessLogWriter`` every 200 ms or 32 KiB, so logging costs no syscall per request and never
/// blocks the reactor: the writer writes from its own thread and drops (and counts) what does
/// not fit in its bounded queue.
final class AccessLogBuffer {
    private var buffer: [UInt8] = []
    /// Lines in ``buffer``: what a dropped chunk counts as.
    private var lines = 0
    private var scheduled = false
    let reactor: Reactor
    let writer: AccessLogWriter
    static let flushSize = 32 * 1024

    init(reactor: Reactor, writer: AccessLogWriter = .standardOutput) {
        self.reactor = reactor
        self.writer = writer
        buffer.reserveCapacity(2 * Self.flushSize)
    }

    func append(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        lines += 1
        if buffer.count >= Self.flushSize {
            flush()
        } else if !scheduled {
            scheduled = true
            reactor.schedule(at: .now() + .milliseconds(200)) { [self] in
                self.scheduled = false
                self.flush()
            }
        }
    }

    /// Hands the lines collected so far to the writer (without waiting for it).
    func flush() {
        guard !buffer.isEmpty else { return }
        let chunk = buffer
        buffer = []
        buffer.reserveCapacity(2 * Self.flushSize)
        writer.enqueue(chunk, lines: lines)
        lines = 0
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
