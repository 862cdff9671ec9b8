import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TapperCore

/// Reads the routes of any HTTP service from its OpenAPI 3.x document (FastAPI serves one at
/// `/openapi.json`), so it can be registered without code changes.
public enum OpenAPIRoutes {
    static let methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]

    /// Fetches and parses the document.
    /// - Parameters:
    ///   - serviceURL: the instance's origin.
    ///   - path: where the document is (default FastAPI's `/openapi.json`).
    ///   - skipping: paths not to publish (the health endpoint).
    public static func fetch(serviceURL: String, path: String = "/openapi.json", skipping: Set<String> = [], http: HTTPClient = TapperHTTPClient.shared) async throws -> [RouteSpec] {
        var base = serviceURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = base + (path.hasPrefix("/") ? path : "/" + path)
        let body: ByteBuffer
        do {
            let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
            guard response.status == .ok else {
                throw TapperClientError(.api(status: Int(response.status.code), code: "openapi", field: nil), message: "\(url) answered HTTP \(response.status.code); is the OpenAPI document there? (--openapi-path)")
            }
            body = try await response.body.collect(upTo: 16 << 20)
        } catch let e as TapperClientError {
            throw e
        } catch {
            throw TapperClientError(.unreachable, message: "could not fetch the OpenAPI document at \(url): is the service running?")
        }
        return try parse(Data(body.readableBytesView), skipping: skipping)
    }

    /// Extracts `[RouteSpec]` from an OpenAPI 3.x document: one route per path with its methods
    /// (two when some of its operations are public and others not).
    public static func parse(_ data: Data, skipping: Set<String> = []) throws -> [RouteSpec] {
        guard let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TapperClientError(.invalidResponse, message: "the OpenAPI document is not a JSON object")
        }
        guard let version = doc["openapi"] as? String, version.hasPrefix("3.") else {
            throw TapperClientError(.invalidResponse, message: "only OpenAPI 3.x documents are supported (no 'openapi: 3.x' field found)")
        }
        let paths = doc["paths"] as? [String: Any] ?? [:]
        var routes: [RouteSpec] = []
        for path in paths.keys.sorted() where !skipping.contains(path) {
            guard let item = paths[path] as? [String: Any] else { continue }
            let verbs = methods.filter { item[$0] != nil }
            guard !verbs.isEmpty else { continue }
            let open = verbs.filter { isPublic(item[$0] as? [String: Any] ?? [:]) }
            let guarded = verbs.filter { !open.contains($0) }
            if !guarded.isEmpty { routes.append(RouteSpec(methods: guarded.map { $0.uppercased() }, path: path)) }
            if !open.isEmpty { routes.append(RouteSpec(methods: open.map { $0.uppercased() }, path: path, isPublic: true)) }
        }
        return routes
    }

    /// An operation the gateway serves without authentication: `"x-tapper-public": true`, or
    /// OpenAPI's own way of saying an operation needs no credentials, `"security": []`.
    static func isPublic(_ operation: [String: Any]) -> Bool {
        if let flag = operation["x-tapper-public"] as? Bool { return flag }
        if let security = operation["security"] as? [Any] { return security.isEmpty }
        return false
    }
}
