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
    /// identifiers cannot be reused while it is here).
    private var templates: [TemplateKey: SpanTemplate] = [:]
    /// The templates found lately, by their `Host` and instance (``slotsKept`` slots, each
    /// holding the last template of the pairs that hash to it), read without a retain: the
    /// index above holds them. Several instances behind a route take turns (the balancer
    /// alternates), so one "last template" would miss on nearly every request and hash three
    /// identities into the dictionary (~600 instructions with two instances, callgrind).
    private let slots: UnsafeMutablePointer<TemplateSlot>
    static let slotsKept = 16
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

    /// A slot of ``slots``: a template, and the route-table entry and snapshot generation it
    /// was found for (its route's method it names itself).
    struct TemplateSlot {
        var template: Unmanaged<SpanTemplate>?
        var entry = -1
        var generation = -1
    }

    init(reactor: Reactor, exporter: TraceExporter) {
        self.reactor = reactor
        self.exporter = exporter
        wallOffset = Self.readWallOffset()
        slots = .allocate(capacity: Self.slotsKept)
        slots.initialize(repeating: TemplateSlot(), count: Self.slotsKept)
    }

    deinit { slots.deallocate() }

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
    /// releases nothing for it (nor for the instance, passed unretained: its target holds it).
    @inline(__always)
    func template(of exchange: Exchange, instance: Unmanaged<SpanInstance>?) -> Unmanaged<SpanTemplate> {
        let host = exchange.traceHost
        let instanceAddress = instance.map { UInt(bitPattern: $0.toOpaque()) } ?? 0
        let slot = slots + Self.slot(host: host, instanceAddress: instanceAddress)
        if let found = slot.pointee.template, slot.pointee.entry == exchange.route.entryIndex,
            slot.pointee.generation == exchange.snapshotGeneration,
            found._withUnsafeGuaranteedRef({ $0.host === host && $0.instanceAddress == instanceAddress && $0.route.method == exchange.method })
        {
            return found
        }
        return .passUnretained(findTemplate(of: exchange, instance: instance?.takeUnretainedValue(), slot: slot))
    }

    /// The slot of a `Host` and instance pair: their addresses mixed (Fibonacci hashing), the
    /// top bits. (Not `hashValue`: that is SipHash, ~180 instructions.)
    @inline(__always) static func slot(host: SpanHost?, instanceAddress: UInt) -> Int {
        let h = host.map { UInt(bitPattern: ObjectIdentifier($0)) } ?? 0
        return Int(truncatingIfNeeded: ((instanceAddress ^ (h &>> 4)) &* 0x9E37_79B9_7F4A_7C15) &>> 60)
    }

    @inline(never) private func findTemplate(of exchange: Exchange, instance: SpanInstance?, slot: UnsafeMutablePointer<TemplateSlot>) -> SpanTemplate {
        let route = route(of: exchange)
        let host = exchange.traceHost
        let key = TemplateKey(route: ObjectIdentifier(route), host: host.map(ObjectIdentifier.init), instance: instance.map(ObjectIdentifier.init))
        let template: SpanTemplate
        if let found = templates[key] {
            template = found
        } else {
            if templates.count >= Self.templatesKept {
                // The slots point into the index: emptied with it.
                slots.update(repeating: TemplateSlot(), count: Self.slotsKept)
                templates.removeAll(keepingCapacity: true)
            }
            template = SpanTemplate(route: route, host: host, instance: instance)
            templates[key] = template
        }
        slot.pointee = TemplateSlot(template: .passUnretained(template), entry: exchange.route.entryIndex, generation: exchange.snapshotGeneration)
        return template
    }

    /// Whether every slot names a template the index holds (they are read unretained: one
    /// the index let go would be freed memory). For tests.
    var slotsPointIntoIndex: Bool {
        let held = Set(templates.values.map { ObjectIdentifier($0) })
        return (0..<Self.slotsKept).allSatisfy { i in
            slots[i].template.map { held.contains(ObjectIdentifier($0.takeUnretainedValue())) } ?? true
        }
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
