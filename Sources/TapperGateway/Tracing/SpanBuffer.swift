import NIOCore
import TapperCore

/// Per-reactor span buffer: finished spans collect here and go to the ``TraceExporter`` 64 at a
/// time or 200 ms after the first, so recording a span costs an append, and the exporter's lock
/// is taken once per chunk rather than per request (the pattern of ``AccessLogBuffer``).
///
/// It also keeps what this loop's spans share, so that recording one makes no string: a
/// ``SpanRoute`` per route-table entry and method, the ``SpanHost``s of recent `Host` values,
/// and the wall clock's offset from the uptime clock the exchange already read.
final class SpanBuffer {
    var records: [SpanRecord] = []
    private var scheduled = false
    let reactor: Reactor
    let exporter: TraceExporter
    static let chunk = 64

    /// Wall-clock minus uptime nanoseconds: a span's times are its exchange's uptime readings
    /// moved by this. Read again at every flush, so a wall-clock correction reaches the spans
    /// within one chunk.
    private var wallOffset: Int64
    /// Per route-table entry of snapshot generation ``routesGeneration``: its routes by method.
    private var routes: [[SpanRoute]] = []
    private var routesGeneration = -1
    /// `Host` values seen lately (most requests to a gateway name one of a few).
    private var hosts: [SpanHost] = []
    private var nextHostSlot = 0
    static let hostsKept = 8
    static let methodsKept = 8

    init(reactor: Reactor, exporter: TraceExporter) {
        self.reactor = reactor
        self.exporter = exporter
        wallOffset = Self.readWallOffset()
        records.reserveCapacity(Self.chunk)
    }

    /// Wall-clock time of an uptime reading.
    @inline(__always) func unixNanos(_ uptime: NIODeadline) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: uptime.uptimeNanoseconds) &+ wallOffset)
    }

    /// The shared span fields of `method` on route-table entry `entry` of snapshot `generation`.
    func route(entry: Int, generation: Int, method: String, template: String, service: String) -> SpanRoute {
        if generation != routesGeneration {
            // A request that started on an older snapshot than the cache's gets its own.
            guard generation > routesGeneration, entry >= 0 else { return SpanRoute(method: method, template: template, service: service) }
            routes = []
            routesGeneration = generation
        }
        guard entry >= 0 else { return SpanRoute(method: method, template: template, service: service) }
        if entry < routes.count {
            for r in routes[entry] where r.method == method { return r }
        } else {
            routes.append(contentsOf: repeatElement([], count: entry + 1 - routes.count))
        }
        let made = SpanRoute(method: method, template: template, service: service)
        if routes[entry].count >= Self.methodsKept { routes[entry].removeLast() }
        routes[entry].append(made)
        return made
    }

    /// The shared span fields of the `Host` value `bytes`.
    func host(_ bytes: UnsafeRawBufferPointer) -> SpanHost {
        for h in hosts where h.matches(bytes) { return h }
        let made = SpanHost(String(decoding: bytes, as: UTF8.self))
        if hosts.count < Self.hostsKept {
            hosts.append(made)
        } else {
            hosts[nextHostSlot] = made
            nextHostSlot = (nextHostSlot + 1) % Self.hostsKept
        }
        return made
    }

    /// A record was appended to ``records`` (built straight into it by
    /// `LoopContext.recordSpan`: one handed over as an argument would be copied, retaining
    /// every reference in it).
    @inline(__always) func appended() {
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
        wallOffset = Self.readWallOffset()
        guard !records.isEmpty else { return }
        let chunk = records
        records = []
        records.reserveCapacity(Self.chunk)
        exporter.enqueue(chunk)
    }

    private static func readWallOffset() -> Int64 {
        Int64(bitPattern: WallClock.nanoseconds()) &- Int64(bitPattern: NIODeadline.now().uptimeNanoseconds)
    }
}

@available(*, unavailable)
extension SpanBuffer: Sendable {}
