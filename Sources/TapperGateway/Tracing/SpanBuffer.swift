import NIOCore
import TapperCore

/// Per-reactor span buffer: finished spans collect here and go to the ``TraceExporter`` 64 at a
/// time or 200 ms after the first, so recording a span costs an append, and the exporter's lock
/// is taken once per chunk rather than per request (the pattern of ``AccessLogBuffer``).
final class SpanBuffer {
    private var records: [SpanRecord] = []
    private var scheduled = false
    let reactor: Reactor
    let exporter: TraceExporter
    static let chunk = 64

    init(reactor: Reactor, exporter: TraceExporter) {
        self.reactor = reactor
        self.exporter = exporter
        records.reserveCapacity(Self.chunk)
    }

    func append(_ record: SpanRecord) {
        records.append(record)
        if records.count >= Self.chunk {
            flush()
        } else if !scheduled {
            scheduled = true
            reactor.schedule(at: .now() + .milliseconds(200)) { [self] in
                self.scheduled = false
                self.flush()
            }
        }
    }

    /// Hands the spans collected so far to the exporter (without waiting for it).
    func flush() {
        guard !records.isEmpty else { return }
        let chunk = records
        records = []
        records.reserveCapacity(Self.chunk)
        exporter.enqueue(chunk)
    }
}

@available(*, unavailable)
extension SpanBuffer: Sendable {}
