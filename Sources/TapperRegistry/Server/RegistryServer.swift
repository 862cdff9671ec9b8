import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TapperCore

/// The registry's HTTP API (DESIGN.md "Registry HTTP API (v1)") over any ``RegistryBackend``.
public struct RegistryServer: Sendable {
    /// Settings of the HTTP API.
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Largest accepted request body, in bytes.
        public var maxBodyBytes: Int
        /// The write token, read on each request (nil: writes are open). It grants reads too.
        public var token: @Sendable () -> String?
        /// A read-only token, read on each request: reads only (a write with it gets 403).
        public var readToken: @Sendable () -> String?
        /// Reads (everything but `GET /v1/health`) need the write or the read-only token.
        public var protectReads: Bool
        /// Longest `wait` a blocking query may ask for.
        public var maxWait: Duration
        /// Idle keep-alive connections are closed after this long.
        public var idleTimeout: Duration

        public init(
            host: String = "127.0.0.1",
            port: Int = 8001,
            maxBodyBytes: Int = 1 << 20,
            token: @escaping @Sendable () -> String? = { nil },
            readToken: @escaping @Sendable () -> String? = { nil },
            protectReads: Bool = false,
            maxWait: Duration = .seconds(600),
            idleTimeout: Duration = .seconds(75)
        ) {
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.token = token
            self.readToken = readToken
            self.protectReads = protectReads
            self.maxWait = maxWait
            self.idleTimeout = idleTimeout
        }
    }

    public let backend: any RegistryBackend
    public let configuration: Configuration

    public init(backend: any RegistryBackend, configuration: Configuration = .init()) {
        self.backend = backend
        self.configuration = configuration
    }

    /// The router with every endpoint of the API.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorShapeMiddleware())
        router.add(middleware: TokenAuthMiddleware(token: configuration.token, readToken: configuration.readToken, protectReads: configuration.protectReads))
        let api = RegistryAPI(backend: backend, configuration: configuration)
        router.put("/v1/services/:service/instances/:instance", use: api.register)
        router.put("/v1/services/:service/instances/:instance/heartbeat", use: api.heartbeat)
        router.delete("/v1/services/:service/instances/:instance", use: api.deregister)
        router.get("/v1/services", use: api.listServices)
        router.get("/v1/services/:service", use: api.service)
        router.get("/v1/catalog", use: api.catalog)
        router.get("/v1/health", use: api.health)
        router.get("/v1/openapi.json", use: api.openAPI)
        return router
    }

    /// A Hummingbird application serving the API; the backend runs as one of its services.
    /// - Parameter onServerRunning: receives the bound port (useful with port 0).
    public func application(
        logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> any Service {
        Application(
            router: router(),
            server: .http1(configuration: .init(idleTimeout: .seconds(configuration.idleTimeout.components.seconds))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil, reuseAddress: true),
            services: [backend],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
            logger: logger
        )
    }

    /// Whether `host` only listens on the loopback interface.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }
}

/// The endpoint handlers.
struct RegistryAPI: Sendable {
    let backend: any RegistryBackend
    let configuration: RegistryServer.Configuration

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, index: UInt64? = nil) throws -> Response {
        let data = try encoder.encode(value)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let index { headers[.tapperIndex] = String(index) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func names(_ context: BasicRequestContext) throws -> (String, String?) {
        guard let service = context.parameters.get("service") else { throw APIError(.notFound, code: "not_found", message: "no service in path") }
        do {
            try Names.validateServiceName(service, field: "service")
            let instance = context.parameters.get("instance")
            if let instance { try Names.validateInstanceID(instance, field: "instance_id") }
            return (service, instance)
        } catch {
            throw APIError.invalid(error)
        }
    }

    @Sendable func register(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let (service, instance) = try names(context)
        var request = request
        let body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        guard body.readableBytes > 0 else {
            throw APIError(.badRequest, code: "invalid", message: "body: a JSON registration is required", field: "body")
        }
        let registration: ServiceRegistration
        do {
            registration = try JSONDecoder().decode(ServiceRegistration.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError.decoding(error)
        }
        let result = try await backend.register(service: service, instanceID: instance!, registration: registration)
        return try Self.json(result.record, status: result.created ? .created : .ok, index: result.record.modifyIndex)
    }

    @Sendable func heartbeat(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let (service, instance) = try names(context)
        guard try await backend.heartbeat(service: service, instanceID: instance!) else {
            throw APIError(.notFound, code: "unknown_instance", message: "instance '\(instance!)' of service '\(service)' is not registered (expired?); register it again")
        }
        return try Self.json(["status": "ok"])
    }

    @Sendable func deregister(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let (service, instance) = try names(context)
        guard try await backend.deregister(service: service, instanceID: instance!) else {
            throw APIError(.notFound, code: "unknown_instance", message: "instance '\(instance!)' of service '\(service)' is not registered")
        }
        return Response(status: .noContent)
    }

    struct ServiceSummary: Codable {
        var name: String
        var versions: [String]
        var instanceCount: Int
        var routeCount: Int
        enum CodingKeys: String, CodingKey {
            case name, versions
            case instanceCount = "instance_count"
            case routeCount = "route_count"
        }
    }

    struct ServiceList: Codable {
        var index: UInt64
        var services: [ServiceSummary]
    }

    @Sendable func listServices(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let snap = try await backend.snapshot()
        let summaries = snap.services.map { s in
            ServiceSummary(
                name: s.name,
                versions: Array(Set(s.instances.map(\.registration.version))).sorted(),
                instanceCount: s.instances.count,
                routeCount: Set(s.instances.flatMap { i in i.registration.routes.map { i.registration.prefix + $0.path + " " + $0.methods.joined(separator: ",") } }).count
            )
        }
        return try Self.json(ServiceList(index: snap.index, services: summaries), index: snap.index)
    }

    struct ServiceDetail: Codable {
        var index: UInt64
        var name: String
        var instances: [InstanceRecord]
    }

    @Sendable func service(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let (service, _) = try names(context)
        let snap = try await backend.snapshot()
        guard let s = snap.service(named: service) else {
            throw APIError(.notFound, code: "unknown_service", message: "service '\(service)' has no registered instances")
        }
        return try Self.json(ServiceDetail(index: snap.index, name: s.name, instances: s.instances), index: snap.index)
    }

    /// `GET /v1/catalog?index=N&wait=30s`: Consul-style blocking query.
    @Sendable func catalog(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        guard let rawIndex = query.get("index") else {
            let snap = try await backend.snapshot()
            return try Self.json(snap, index: snap.index)
        }
        guard let index = UInt64(rawIndex) else {
            throw APIError(.badRequest, code: "invalid", message: "index: must be a non-negative integer", field: "index")
        }
        var wait = Duration.seconds(30)
        if let rawWait = query.get("wait") {
            guard let parsed = DurationParser.parse(String(rawWait)) else {
                throw APIError(.badRequest, code: "invalid", message: "wait: must be a duration like 500ms, 30s or 5m", field: "wait")
            }
            wait = min(parsed, configuration.maxWait)
        }
        let snap = try await waitForChange(after: index, timeout: wait)
        return try Self.json(snap, index: snap.index)
    }

    func waitForChange(after index: UInt64, timeout: Duration) async throws -> CatalogSnapshot {
        if let memory = backend as? MemoryBackend {
            return await memory.snapshot(after: index, timeout: timeout)
        }
        let watch = backend.watch().after(index)
        let changed: CatalogSnapshot? = try await withThrowingTaskGroup(of: CatalogSnapshot?.self) { group in
            group.addTask {
                var it = watch.makeAsyncIterator()
                return try await it.next()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let changed { return changed }
        return try await backend.snapshot()
    }

    struct Health: Codable {
        struct Backend: Codable {
            var name: String
            var status: String
            var error: String?
        }
        var status: String
        var index: UInt64?
        var instances: Int?
        var backend: Backend
    }

    @Sendable func health(_ request: Request, context: BasicRequestContext) async throws -> Response {
        do {
            let snap = try await backend.snapshot()
            return try Self.json(
                Health(status: "ok", index: snap.index, instances: snap.allInstances.count, backend: .init(name: backend.displayName, status: snap.stale ? "stale" : "ok"))
            )
        } catch {
            return try Self.json(
                Health(status: "degraded", backend: .init(name: backend.displayName, status: "unavailable", error: "\(error)")),
                status: .serviceUnavailable
            )
        }
    }

    @Sendable func openAPI(_ request: Request, context: BasicRequestContext) async throws -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: RegistryOpenAPI.document)))
    }
}

extension HTTPField.Name {
    /// The catalog's change index on catalog responses.
    static let tapperIndex = HTTPField.Name("X-Tapper-Index")!
}
