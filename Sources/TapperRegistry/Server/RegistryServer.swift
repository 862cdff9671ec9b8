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
        /// Longest `wait` a blocking query may ask for; a longer one is cut to this (Consul does the
        /// same). The document at `/v1/openapi.json` states it.
        public var maxWait: Duration
        /// The `wait` of a blocking query that names none (cut to ``maxWait`` when that is shorter).
        public var defaultWait: Duration
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
            defaultWait: Duration = .seconds(30),
            idleTimeout: Duration = .seconds(75)
        ) {
            self.host = host
            self.port = port
            self.maxBodyBytes = maxBodyBytes
            self.token = token
            self.readToken = readToken
            self.protectReads = protectReads
            self.maxWait = maxWait
            self.defaultWait = defaultWait
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
        let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        let api = RegistryAPI(backend: backend, configuration: configuration)
        let endpoints: [(HTTPRequest.Method, String, @Sendable (Request, BasicRequestContext) async throws -> Response)] = [
            (.put, "/v1/services/:service/instances/:instance", api.register),
            (.put, "/v1/services/:service/instances/:instance/heartbeat", api.heartbeat),
            (.delete, "/v1/services/:service/instances/:instance", api.deregister),
            (.get, "/v1/services", api.listServices),
            (.get, "/v1/services/:service", api.service),
            (.get, "/v1/catalog", api.catalog),
            (.get, "/v1/health", api.health),
            (.get, "/v1/openapi.json", api.openAPI),
        ]
        router.add(middleware: ErrorShapeMiddleware(allowed: AllowedMethods(endpoints.map { ($0.0, $0.1) })))
        router.add(middleware: TokenAuthMiddleware(token: configuration.token, readToken: configuration.readToken, protectReads: configuration.protectReads))
        for (method, path, handler) in endpoints {
            router.on(RouterPath(path), method: method, use: handler)
        }
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

    /// The path's service name and instance id, percent-decoded (clients may send `:` as
    /// `%3A`), then validated.
    func names(_ context: BasicRequestContext) throws -> (String, String?) {
        guard let rawService = context.parameters.get("service") else { throw APIError(.notFound, code: "not_found", message: "no service in path") }
        do {
            guard let service = PercentDecoding.decode(rawService) else {
                throw FieldError(field: "service", message: "'\(Names.printable(rawService))' has an invalid percent-encoding")
            }
            try Names.validateServiceName(service, field: "service")
            var instance: String? = nil
            if let rawInstance = context.parameters.get("instance") {
                guard let decoded = PercentDecoding.decode(rawInstance) else {
                    throw FieldError(field: "instance_id", message: "'\(Names.printable(rawInstance))' has an invalid percent-encoding")
                }
                try Names.validateInstanceID(decoded, field: "instance_id")
                instance = decoded
            }
            return (service, instance)
        } catch let error as FieldError {
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
    ///
    /// Without `index` it answers at once. Otherwise it waits until the catalog's index passes N
    /// (so `index=0` on a registry that never changed waits too), for at most `wait` (default
    /// ``RegistryServer/Configuration/defaultWait``, cut to ``RegistryServer/Configuration/maxWait``)
    /// plus a random jitter of up to a sixteenth of it, as Consul adds, so that gateways that
    /// started together do not all come back in the same instant.
    @Sendable func catalog(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        let wait = try BlockingWait.parse(
            wait: query.get("wait").map { String($0) }, default: configuration.defaultWait, max: configuration.maxWait
        )
        var index: UInt64? = nil
        if let rawIndex = query.get("index") {
            guard let parsed = BlockingWait.parseIndex(String(rawIndex)) else {
                throw APIError(.badRequest, code: "invalid", message: "index: must be a non-negative integer", field: "index")
            }
            index = parsed
        }
        guard let index else {
            let snap = try await backend.snapshot()
            return try Self.json(snap, index: snap.index)
        }
        let snap = try await waitForChange(after: index, timeout: BlockingWait.jittered(wait))
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
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: RegistryOpenAPI.document(for: configuration)))
        )
    }
}

extension HTTPField.Name {
    /// The catalog's change index on catalog responses.
    static let tapperIndex = HTTPField.Name("X-Tapper-Index")!
}
