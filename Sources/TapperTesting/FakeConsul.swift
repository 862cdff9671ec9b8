import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TapperRegistry

/// A fake Consul agent + server for tests (no Consul can run here), following Consul's documented
/// HTTP API for what Tapper uses: agent service registration with a TTL check, check pass,
/// deregistration, local service health, catalog services, health service entries, health checks
/// by state, KV get/put with `cas`, `X-Consul-Index` and blocking queries (`?index=N&wait=…`).
/// TTL checks go critical when not passed in time and services are removed after their
/// `DeregisterCriticalServiceAfter`.
///
/// ``stop()`` and ``start()`` take it down and bring it back on the same port with its state
/// (like a restarted agent with its data directory).
public final class FakeConsul: Sendable {
    struct Check: Sendable {
        var id: String
        var status: String
        var ttl: Duration
        var deadline: ContinuousClock.Instant
        var deregisterAfter: Duration?
        var criticalSince: ContinuousClock.Instant?
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    struct Service: Sendable {
        var id: String
        var name: String
        var tags: [String]
        var meta: [String: String]
        var address: String
        var port: Int
        var createIndex: UInt64
        var modifyIndex: UInt64
        var check: Check?
    }

    struct KV: Sendable {
        var value: Data
        var createIndex: UInt64
        var modifyIndex: UInt64
    }

    struct State: Sendable {
        var index: UInt64 = 1
        var services: [String: Service] = [:]
        var kv: [String: KV] = [:]
    }

    let state = Mutex(State())
    let signal = ChangeSignal(index: 1)
    let running = Mutex<(ServiceGroup, Task<Void, any Error>)?>(nil)
    /// Set while stopping, so parked blocking queries return at once (like a killed agent
    /// dropping its connections) instead of holding up the shutdown.
    let stopping = Mutex(false)
    public let port: Int

    public var url: String { "consul://127.0.0.1:\(port)" }
    public var httpURL: String { "http://127.0.0.1:\(port)" }

    /// Starts on a free port.
    public init() async throws {
        port = try StoreServer.freePort()
        try await start()
    }

    /// (Re)starts serving on ``port``.
    public func start() async throws {
        var logger = Logger(label: "test.consul")
        logger.logLevel = .critical
        let (ports, c) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil, reuseAddress: true),
            onServerRunning: { channel in c.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let sweeper = Sweeper(consul: self)
        let group = ServiceGroup(configuration: .init(services: [app, sweeper], logger: logger))
        let task = Task { try await group.run() }
        stopping.withLock { $0 = false }
        running.withLock { $0 = (group, task) }
        var it = ports.makeAsyncIterator()
        guard await it.next() != nil else { throw TestFailure("fake consul did not start") }
    }

    /// Stops serving (connections are closed); the state is kept for ``start()``.
    public func stop() async {
        guard let (group, task) = running.withLock({ r -> (ServiceGroup, Task<Void, any Error>)? in defer { r = nil }; return r }) else { return }
        stopping.withLock { $0 = true }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    struct Sweeper: ServiceLifecycle.Service {
        let consul: FakeConsul
        func run() async throws {
            await cancelWhenGracefulShutdown {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(25))
                    consul.sweep()
                }
            }
        }
    }

    /// TTL checks not passed in time go critical; long-critical services are deregistered.
    func sweep() {
        let now = ContinuousClock.now
        let changed = state.withLock { s -> UInt64? in
            var changed = false
            for (id, var svc) in s.services {
                guard var check = svc.check else { continue }
                if check.status != "critical" && check.deadline <= now {
                    s.index += 1
                    check.status = "critical"
                    check.criticalSince = now
                    check.modifyIndex = s.index
                    svc.check = check
                    s.services[id] = svc
                    changed = true
                }
                if check.status == "critical", let after = check.deregisterAfter, let since = check.criticalSince, now - since >= after {
                    s.index += 1
                    s.services[id] = nil
                    changed = true
                }
            }
            return changed ? s.index : nil
        }
        if changed != nil { publish() }
    }

    /// Go duration strings as Consul takes them: `500ms`, `10s`, `1m`, `1.5s`, `1h`.
    static func duration(_ s: String) -> Duration? {
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where s.hasSuffix(suffix) {
            guard let v = Double(s.dropLast(suffix.count)), v >= 0 else { return nil }
            return .milliseconds(Int64(v * scale * 1000))
        }
        return nil
    }

    // MARK: HTTP

    static func json(_ value: Any, status: HTTPResponse.Status = .ok, index: UInt64? = nil) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys])) ?? Data()
        var headers: HTTPFields = [.contentType: "application/json"]
        if let index { headers[HTTPField.Name("X-Consul-Index")!] = String(index) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func text(_ s: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    /// Publishes the current index to blocking queries. Writers take their index under
    /// ``state`` but publish after releasing it, so publishing the index each one took could
    /// move the signal backwards (writer 5 publishing after writer 6) and wake every parked
    /// query; the current index, read and published under the lock, only grows.
    func publish() {
        state.withLock { s in signal.advance(to: s.index) }
    }

    /// Blocking query: waits while the index is still at most `?index=` (up to `?wait=`,
    /// default 5m). Each round waits for the index to move from where it is now, so an `?index=`
    /// ahead of the store's (a client that saw an earlier store) waits instead of spinning.
    func block(_ request: Request) async {
        guard let raw = request.uri.queryParameters.get("index"), let after = UInt64(raw), after > 0 else { return }
        let wait = request.uri.queryParameters.get("wait").flatMap { Self.duration(String($0)) } ?? .seconds(300)
        let deadline = ContinuousClock.now + wait
        while true {
            let current = signal.index
            guard current <= after, !stopping.withLock({ $0 }), ContinuousClock.now < deadline else { return }
            _ = await signal.wait(after: current, timeout: min(.milliseconds(100), deadline - ContinuousClock.now))
        }
    }

    func serviceJSON(_ s: Service) -> [String: Any] {
        ["ID": s.id, "Service": s.name, "Tags": s.tags, "Meta": s.meta, "Address": s.address, "Port": s.port, "CreateIndex": s.createIndex, "ModifyIndex": s.modifyIndex]
    }

    func checkJSON(_ s: Service, _ c: Check) -> [String: Any] {
        [
            "Node": "fake", "CheckID": c.id, "Name": "Service '\(s.name)' check", "Status": c.status, "ServiceID": s.id, "ServiceName": s.name,
            "ServiceTags": s.tags, "Type": "ttl", "CreateIndex": c.createIndex, "ModifyIndex": c.modifyIndex,
        ]
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)

        router.put("/v1/agent/service/register") { request, context -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            guard let o = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any], let name = o["Name"] as? String, !name.isEmpty
            else { return Self.text("Missing service name", status: .badRequest) }
            let id = (o["ID"] as? String) ?? name
            let meta = o["Meta"] as? [String: String] ?? [:]
            guard meta.count <= 64, meta.allSatisfy({ $0.key.count <= 128 && $0.value.count <= 512 }) else {
                return Self.text("Invalid Service Meta: too many or too long", status: .badRequest)
            }
            var checkDef: (ttl: Duration, status: String, deregister: Duration?, id: String)?
            if let c = o["Check"] as? [String: Any] {
                guard let ttlText = c["TTL"] as? String, let ttl = Self.duration(ttlText) else {
                    return Self.text("Invalid check: TTL must be set", status: .badRequest)
                }
                checkDef = (ttl, (c["Status"] as? String) ?? "critical", (c["DeregisterCriticalServiceAfter"] as? String).flatMap(Self.duration), (c["CheckID"] as? String) ?? "service:\(id)")
            }
            let now = ContinuousClock.now
            self.state.withLock { s in
                s.index += 1
                let old = s.services[id]
                var svc = Service(
                    id: id, name: name, tags: o["Tags"] as? [String] ?? [], meta: meta, address: o["Address"] as? String ?? "", port: o["Port"] as? Int ?? 0,
                    createIndex: old?.createIndex ?? s.index, modifyIndex: s.index, check: nil
                )
                if let d = checkDef {
                    svc.check = Check(
                        id: d.id, status: d.status, ttl: d.ttl, deadline: now + d.ttl, deregisterAfter: d.deregister,
                        criticalSince: d.status == "critical" ? now : nil, createIndex: old?.check?.createIndex ?? s.index, modifyIndex: s.index
                    )
                }
                s.services[id] = svc
            }
            self.publish()
            return Self.text("", status: .ok)
        }

        router.put("/v1/agent/check/pass/:check") { request, context -> Response in
            let checkID = context.parameters.get("check") ?? ""
            let now = ContinuousClock.now
            let result = self.state.withLock { s -> (found: Bool, index: UInt64?) in
                guard let found = s.services.first(where: { $0.value.check?.id == checkID }), var check = found.value.check else { return (false, nil) }
                let id = found.key
                var svc2 = found.value
                check.deadline = now + check.ttl
                var changed: UInt64?
                if check.status != "passing" {
                    s.index += 1
                    check.status = "passing"
                    check.criticalSince = nil
                    check.modifyIndex = s.index
                    changed = s.index
                }
                svc2.check = check
                s.services[id] = svc2
                return (true, changed)
            }
            guard result.found else { return Self.text("CheckID \"\(checkID)\" does not have associated TTL", status: .notFound) }
            if result.index != nil { self.publish() }
            return Self.text("", status: .ok)
        }

        router.put("/v1/agent/service/deregister/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let removed = self.state.withLock { s -> Bool in
                guard s.services.removeValue(forKey: id) != nil else { return false }
                s.index += 1
                return true
            }
            guard removed else { return Self.text("Unknown service ID \"\(id)\". Ensure that the service ID is passed, not the service name.", status: .notFound) }
            self.publish()
            return Self.text("", status: .ok)
        }

        router.get("/v1/agent/health/service/id/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let svc = self.state.withLock({ $0.services[id] }) else {
                return Self.text("ServiceId \(id) not found", status: .notFound)
            }
            let status = svc.check?.status ?? "passing"
            let code: HTTPResponse.Status = status == "passing" ? .ok : status == "warning" ? .tooManyRequests : .serviceUnavailable
            return Self.json(
                ["AggregatedStatus": status, "Service": self.serviceJSON(svc), "Checks": svc.check.map { [self.checkJSON(svc, $0)] } ?? []],
                status: code
            )
        }

        router.get("/v1/catalog/services") { request, context -> Response in
            await self.block(request)
            let (index, services) = self.state.withLock { ($0.index, Array($0.services.values)) }
            var out: [String: [String]] = [:]
            for s in services { out[s.name, default: []].append(contentsOf: s.tags.filter { !(out[s.name] ?? []).contains($0) }) }
            return Self.json(out, index: index)
        }

        router.get("/v1/catalog/service/:name") { request, context -> Response in
            await self.block(request)
            let name = context.parameters.get("name") ?? ""
            let (index, services) = self.state.withLock { ($0.index, $0.services.values.filter { $0.name == name }) }
            let out = services.sorted { $0.id < $1.id }.map { s -> [String: Any] in
                [
                    "Node": "fake", "Address": "127.0.0.1", "ServiceID": s.id, "ServiceName": s.name, "ServiceTags": s.tags, "ServiceMeta": s.meta,
                    "ServiceAddress": s.address, "ServicePort": s.port, "CreateIndex": s.createIndex, "ModifyIndex": s.modifyIndex,
                ]
            }
            return Self.json(out, index: index)
        }

        router.get("/v1/health/service/:name") { request, context -> Response in
            await self.block(request)
            let name = context.parameters.get("name") ?? ""
            let passingOnly = request.uri.queryParameters.get("passing") != nil
            let (index, services) = self.state.withLock { ($0.index, $0.services.values.filter { $0.name == name }) }
            let out = services.sorted { $0.id < $1.id }.filter { !passingOnly || ($0.check?.status ?? "passing") == "passing" }.map { s -> [String: Any] in
                ["Node": ["Node": "fake", "Address": "127.0.0.1"], "Service": self.serviceJSON(s), "Checks": s.check.map { [self.checkJSON(s, $0)] } ?? []]
            }
            return Self.json(out, index: index)
        }

        router.get("/v1/health/state/:state") { request, context -> Response in
            await self.block(request)
            let wanted = context.parameters.get("state") ?? "any"
            let (index, services) = self.state.withLock { ($0.index, Array($0.services.values)) }
            let out = services.compactMap { s -> [String: Any]? in
                guard let c = s.check, wanted == "any" || c.status == wanted else { return nil }
                return self.checkJSON(s, c)
            }
            return Self.json(out, index: index)
        }

        router.get("/v1/kv/**") { request, context -> Response in
            await self.block(request)
            let key = String(request.uri.path.dropFirst("/v1/kv/".count))
            let (index, entry) = self.state.withLock { ($0.index, $0.kv[key]) }
            guard let entry else { return Self.text("", status: .notFound).withIndex(index) }
            return Self.json(
                [["Key": key, "Value": entry.value.base64EncodedString(), "Flags": 0, "LockIndex": 0, "CreateIndex": entry.createIndex, "ModifyIndex": entry.modifyIndex]],
                index: index
            )
        }

        router.put("/v1/kv/**") { request, context -> Response in
            var request = request
            let key = String(request.uri.path.dropFirst("/v1/kv/".count))
            let body = Data(try await request.collectBody(upTo: 512 * 1024).readableBytesView)
            let cas = request.uri.queryParameters.get("cas").flatMap { UInt64($0) }
            let index = self.state.withLock { s -> UInt64? in
                let old = s.kv[key]
                if let cas {
                    if cas == 0 && old != nil { return nil }
                    if cas != 0 && old?.modifyIndex != cas { return nil }
                }
                s.index += 1
                s.kv[key] = KV(value: body, createIndex: old?.createIndex ?? s.index, modifyIndex: s.index)
                return s.index
            }
            if index != nil { self.publish() }
            return Self.json(index != nil)
        }

        return router
    }
}

extension Response {
    func withIndex(_ index: UInt64) -> Response {
        var r = self
        r.headers[HTTPField.Name("X-Consul-Index")!] = String(index)
        return r
    }
}
