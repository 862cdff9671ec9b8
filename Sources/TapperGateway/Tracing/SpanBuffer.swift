import NIOCore
import TapperCore

/// Per-reactor span buffer: finished spans collect here and go to the ``TraceExporter`` 128 at a
/// time or 200 ms after the first, so recording a span costs an append, and the exporter's lock
/// is taken once per chunk rather than per request (the pattern of ``AccessLogBuffer``).
///
/// It also keeps what this loop's spans share, so that recording one makes no string: a
/// ``SpanRoute`` per route-table entry and method, the ``SpanHost``s of recent `Host` values,
/// the ``SpanTemplate``s of recent route, `Host` and instance triples, and the wall clock's
/// offset from the uptime clock the exchange already read.
final class SpanBuffer {
    /// The spans recorded since the last flush.
    var chunk = SpanChunk(capacity: SpanBuffer.chunkSize)
    private var scheduled = false
    let reactor: Reactor
    let exporter: TraceExporter
    static let chunkSize = 128

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
    /// The one found last (most requests name the same host as the one before).
    private var lastHost: SpanHost?
    /// Templates by route, `Host` and instance (a template keeps the three alive, so their
    /// identifiers cannot be reused while it is here), and the one used last.
    private var templates: [TemplateKey: SpanTemplate] = [:]
    private var lastTemplate: SpanTemplate? {
        didSet { lastTemplateRef = lastTemplate.map { .passUnretained($0) } }
    }
    /// ``lastTemplate``, to be read without a retain.
    private var lastTemplateRef: Unmanaged<SpanTemplate>?
    /// The route-table entry and snapshot generation ``lastTemplate`` was found for.
    private var lastTemplateEntry = -1
    private var lastTemplateGeneration = -1
    static let hostsKept = 8
    static let methodsKept = 8
    /// Templates kept at most (past that the index starts again: routes, `Host`s and instances
    /// that are gone let go of theirs).
    static let templatesKept = 4096

    private struct TemplateKey: Hashable {
        var route: ObjectIdentifier
        var host: ObjectIdentifier?
        var instance: ObjectIdentifier?
    }

    init(reactor: Reactor, exporter: TraceExporter) {
        self.reactor = reactor
        self.exporter = exporter
        wallOffset = Self.readWallOffset()
    }

    /// Wall-clock time of an uptime reading.
    @inline(__always) func unixNanos(_ uptime: NIODeadline) -> UInt64 {
        UInt64(bitPattern: Int64(bitPattern: uptime.uptimeNanoseconds) &+ wallOffset)
    }

    /// The shared span fields of `exchange`'s route and method (reads only its entry index,
    /// snapshot generation and method while they are cached: a copy of its route would retain
    /// every field of it).
    func route(of exchange: Exchange) -> SpanRoute {
        let entry = exchange.route.entryIndex
        let generation = exchange.snapshotGeneration
        if generation == routesGeneration, entry >= 0, entry < routes.count {
            for r in routes[entry] where r.method == exchange.method { return r }
        }
        return makeRoute(of: exchange)
    }

    @inline(never) private func makeRoute(of exchange: Exchange) -> SpanRoute {
        let entry = exchange.route.entryIndex
        let generation = exchange.snapshotGeneration
        let made = SpanRoute(method: exchange.method, template: exchange.route.routeTemplate, service: exchange.route.service)
        // A request that started on an older snapshot than the cache's gets one of its own.
        guard entry >= 0, generation >= routesGeneration else { return made }
        if generation > routesGeneration {
            routes = []
            routesGeneration = generation
        }
        if entry >= routes.count { routes.append(contentsOf: repeatElement([], count: entry + 1 - routes.count)) }
        if routes[entry].count >= Self.methodsKept { routes[entry].removeLast() }
        routes[entry].append(made)
        return made
    }

    /// The shared span fields of the `Host` value `bytes`.
    func host(_ bytes: UnsafeRawBufferPointer) -> SpanHost {
        if let last = lastHost, last.matches(bytes) { return last }
        for h in hosts where h.matches(bytes) {
            lastHost = h
            return h
        }
        let made = SpanHost(String(decoding: bytes, as: UTF8.self))
        if hosts.count < Self.hostsKept {
            hosts.append(made)
        } else {
            hosts[nextHostSlot] = made
            nextHostSlot = (nextHostSlot + 1) % Self.hostsKept
        }
        lastHost = made
        return made
    }

    /// The span template of `exchange`'s route, method, `Host` and instance, unretained: it
    /// stays valid until the next call (this buffer holds it), so recording a span retains and
    /// releases nothing for it.
    @inline(__always)
    func template(of exchange: Exchange, instance: SpanInstance?) -> Unmanaged<SpanTemplate> {
        if let last = lastTemplateRef, lastTemplateEntry == exchange.route.entryIndex, lastTemplateGeneration == exchange.snapshotGeneration,
            last._withUnsafeGuaranteedRef({ $0.host === exchange.traceHost && $0.instance === instance && $0.route.method == exchange.method })
        {
            return last
        }
        return .passUnretained(findTemplate(of: exchange, instance: instance))
    }

    @inline(never) private func findTemplate(of exchange: Exchange, instance: SpanInstance?) -> SpanTemplate {
        let route = route(of: exchange)
        let host = exchange.traceHost
        let key = TemplateKey(route: ObjectIdentifier(route), host: host.map(ObjectIdentifier.init), instance: instance.map(ObjectIdentifier.init))
        let template: SpanTemplate
        if let found = templates[key] {
            template = found
        } else {
            if templates.count >= Self.templatesKept { templates.removeAll(keepingCapacity: true) }
            template = SpanTemplate(route: route, host: host, instance: instance)
            templates[key] = template
        }
        lastTemplate = template
        lastTemplateEntry = exchange.route.entryIndex
        lastTemplateGeneration = exchange.snapshotGeneration
        return template
    }

    /// A span was appended to ``chunk``.
    @inline(__always) func appended() {
        if chunk.count >= Self.chunkSize {
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
        guard !chunk.isEmpty else { return }
        let full = chunk
        full.seal()
        chunk = SpanChunk(capacity: Self.chunkSize)
        exporter.enqueue(full)
    }

    private static func readWallOffset() -> Int64 {
        Int64(bitPattern: WallClock.nanoseconds()) &- Int64(bitPattern: NIODeadline.now().uptimeNanoseconds)
    }
}

@available(*, unavailable)
extension SpanBuffer: Sendable {}
