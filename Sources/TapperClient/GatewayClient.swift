import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TapperCore

/// A typed client of the gateway's admin endpoints.
public struct GatewayClient: Sendable {
    let transport: HTTPJSONClient

    public static let defaultURL = "http://127.0.0.1:8000"

    public init(baseURL: String = GatewayClient.defaultURL, token: String? = nil, httpClient: HTTPClient = TapperHTTPClient.shared, timeout: Duration = .seconds(5)) {
        transport = HTTPJSONClient(baseURL: baseURL, token: token, http: httpClient, timeout: timeout, role: "gateway", startHint: "tapper gateway serve")
    }

    public var baseURL: String { transport.baseURL }
    public var authority: String { transport.authority }

    /// `GET /_tapper/status`.
    public func status() async throws -> StatusReport {
        try transport.decode(StatusReport.self, from: try await transport.send(.GET, "/_tapper/status"))
    }

    /// Sends a request through the gateway and returns status, headers and body.
    public func send(method: String, path: String, headers: [(String, String)], body: Data?) async throws -> (status: Int, headers: [(String, String)], body: Data) {
        var request = HTTPClientRequest(url: transport.baseURL + path)
        request.method = HTTPMethod(rawValue: method.uppercased())
        for (k, v) in headers { request.headers.add(name: k, value: v) }
        if let body { request.body = .bytes(body) }
        do {
            let response = try await transport.http.execute(request, timeout: .seconds(30))
            let buffer = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), response.headers.map { ($0.name, $0.value) }, Data(buffer.readableBytesView))
        } catch {
            throw TapperClientError(.unreachable, message: "gateway at \(transport.authority) could not be reached; is 'tapper gateway serve' running?")
        }
    }
}
