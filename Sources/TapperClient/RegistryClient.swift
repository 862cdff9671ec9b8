import AsyncHTTPClient
import Foundation
import NIOHTTP1
import TapperCore

/// A typed client of the registry API, used by the CLI, the shell, the gateway and tests.
public struct RegistryClient: Sendable {
    let transport: HTTPJSONClient

    /// The registry URL used when none is given.
    public static let defaultURL = "http://127.0.0.1:8001"

    /// - Parameters:
    ///   - baseURL: e.g. `http://127.0.0.1:8001`.
    ///   - token: bearer token for writes.
    ///   - httpClient: defaults to the shared client.
    ///   - timeout: per-request timeout (blocking queries add their `wait`).
    public init(baseURL: String = RegistryClient.defaultURL, token: String? = nil, httpClient: HTTPClient = TapperHTTPClient.shared, timeout: Duration = .seconds(5)) {
        transport = HTTPJSONClient(baseURL: baseURL, token: token, http: httpClient, timeout: timeout, role: "registry", startHint: "tapper registry serve")
    }

    public var baseURL: String { transport.baseURL }
    /// `host:port` of the registry.
    public var authority: String { transport.authority }

    static let encoder = JSONEncoder()

    /// Registers or updates an instance.
    /// - Returns: the stored record and whether it was created (201) rather than updated (200).
    public func register(service: String, instanceID: String, registration: ServiceRegistration) async throws -> (record: InstanceRecord, created: Bool) {
        let body = try Self.encoder.encode(registration)
        let reply = try await transport.send(.PUT, "/v1/services/\(service)/instances/\(instanceID)", body: body)
        let record = try transport.decode(InstanceRecord.self, from: reply)
        return (record, reply.status == 201)
    }

    /// Refreshes the TTL. Returns false when the registry does not know the instance (re-register).
    public func heartbeat(service: String, instanceID: String) async throws -> Bool {
        let reply = try await transport.send(.PUT, "/v1/services/\(service)/instances/\(instanceID)/heartbeat")
        if reply.status == 404 { return false }
        try transport.check(reply)
        return true
    }

    /// Deregisters. Returns false when the instance was not registered.
    public func deregister(service: String, instanceID: String) async throws -> Bool {
        let reply = try await transport.send(.DELETE, "/v1/services/\(service)/instances/\(instanceID)")
        if reply.status == 404 { return false }
        try transport.check(reply)
        return true
    }

    /// The catalog now, or — with `index` — once it changes past `index` or `wait` ends.
    public func catalog(index: UInt64? = nil, wait: Duration = .seconds(30)) async throws -> CatalogSnapshot {
        if let index {
            let ms = wait.milliseconds
            let reply = try await transport.send(.GET, "/v1/catalog?index=\(index)&wait=\(ms)ms", timeout: wait + transport.timeout)
            return try transport.decode(CatalogSnapshot.self, from: reply)
        }
        return try transport.decode(CatalogSnapshot.self, from: try await transport.send(.GET, "/v1/catalog"))
    }

    /// The registry's `/v1/health` answer as raw JSON.
    public func health() async throws -> Data {
        let reply = try await transport.send(.GET, "/v1/health")
        try transport.check(reply)
        return reply.body
    }

    /// GETs a path and returns the raw reply (status, body) without interpretation.
    public func raw(_ path: String) async throws -> (status: Int, body: Data) {
        let reply = try await transport.send(.GET, path)
        return (reply.status, reply.body)
    }
}
