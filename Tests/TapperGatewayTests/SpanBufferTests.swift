import Logging
import NIOCore
import TapperCore
import Testing

@testable import TapperGateway

/// The span buffer's template lookup: whatever order requests of many routes, methods, `Host`s
/// and instances come in (more pairs than the buffer has slots, so slots are shared and
/// overwritten), each gets the template of its own route, method, `Host` and instance — the
/// same object every time while the routing snapshot stays — and a new snapshot gets new ones.
@Suite struct SpanBufferTests {
    static let exporter = TraceExporter(
        settings: TraceExporter.Settings(endpoint: "http://127.0.0.1:9/"), version: "test",
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))

    static func target(_ i: Int) -> UpstreamTarget {
        UpstreamTarget(
            service: "users", instanceID: "u\(i)", url: ServiceURL(scheme: .http, host: "127.0.0.1", port: 9000 + i), weight: 1,
            healthEndpoint: "/health", version: "1")
    }

    static func exchange(entry: Int, method: String, host: SpanHost?, target: UpstreamTarget, generation: Int) -> Exchange {
        let route = RequestAdmission.Route(
            service: "users", routeTemplate: "/r\(entry)/{id}", entryIndex: entry, candidates: [target], balancerCandidates: [])
        let e = Exchange(
            requestHead: ByteBuffer(), clientMinorVersion: 1, method: method, requestID: "id", started: .now(), path: "/r\(entry)/1", route: route,
            retryBufferBytes: 0, trace: nil, traceHost: host)
        e.snapshotGeneration = generation
        e.startAttempt(0)
        return e
    }

    @Test func everyRequestGetsItsOwnTemplate() async throws {
        try await withReactor { reactor in
            let buffer = SpanBuffer(reactor: reactor, exporter: Self.exporter)
            let hosts: [SpanHost?] = [SpanHost("a.example:80"), SpanHost("b.example"), nil]
            let targets = (0..<7).map(Self.target)
            let methods = ["GET", "POST"]
            var rng = SystemRandomNumberGenerator()
            var earlier = Set<ObjectIdentifier>()
            for generation in [1, 2] {
                var seen: [String: ObjectIdentifier] = [:]
                for _ in 0..<3000 {
                    let entry = Int.random(in: 0..<3, using: &rng)
                    let method = methods.randomElement(using: &rng)!
                    let host = hosts.randomElement(using: &rng)!
                    let target = targets.randomElement(using: &rng)!
                    let exchange = Self.exchange(entry: entry, method: method, host: host, target: target, generation: generation)
                    let template = buffer.template(of: exchange, instance: exchange.target?.spanInstanceRef).takeUnretainedValue()
                    #expect(template.route.template == "/r\(entry)/{id}" && template.route.method == method)
                    #expect(template.host === host && template.instance === target.spanInstance)
                    #expect(buffer.slotsPointIntoIndex)
                    let key = "\(generation) \(entry) \(method) \(host?.value ?? "-") \(target.instanceID)"
                    let id = ObjectIdentifier(template)
                    #expect(seen[key, default: id] == id, "\(key): a second template")
                    seen[key] = id
                }
                // All of the 3 x 2 x 3 x 7 were drawn, and none of the earlier snapshot's came back.
                #expect(seen.count == 3 * 2 * 3 * 7)
                let these = Set(seen.values)
                #expect(these.isDisjoint(with: earlier))
                earlier = these
            }
            // Past the index's cap (4,096) it starts again, and the slots with it: requests of
            // the routes before and after still get their own templates.
            let target = targets[0]
            for entry in 10..<(10 + SpanBuffer.templatesKept + 100) {
                let exchange = Self.exchange(entry: entry, method: "GET", host: hosts[0], target: target, generation: 2)
                let template = buffer.template(of: exchange, instance: exchange.target?.spanInstanceRef).takeUnretainedValue()
                #expect(template.route.template == "/r\(entry)/{id}" && template.host === hosts[0] && template.instance === target.spanInstance)
            }
            #expect(buffer.slotsPointIntoIndex)
            for entry in [0, 1, 2, 10, 11, 4000, 4105] {
                for host in hosts {
                    let exchange = Self.exchange(entry: entry, method: "POST", host: host, target: target, generation: 2)
                    let template = buffer.template(of: exchange, instance: exchange.target?.spanInstanceRef).takeUnretainedValue()
                    #expect(template.route.template == "/r\(entry)/{id}" && template.route.method == "POST" && template.host === host)
                }
            }
        }
    }
}
