import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TapperCore

/// A raw HTTP exchange for tests: status, headers and body, nothing interpreted.
public struct HTTPReply: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: Data

    public var text: String { String(decoding: body, as: UTF8.self) }

    public init(status: Int, headers: HTTPHeaders, body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The body as a JSON object.
    public func json() throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw TestFailure("not a JSON object: \(text)") }
        return o
    }

    /// `error.field` of an error body.
    public var errorField: String? { ((try? json())?["error"] as? [String: Any])?["field"] as? String }
    /// `error.message` of an error body.
    public var errorMessage: String? { ((try? json())?["error"] as? [String: Any])?["message"] as? String }
}

/// Sends one request with the shared client.
public func httpRequest(
    _ method: HTTPMethod,
    _ url: String,
    body: Data? = nil,
    headers: [(String, String)] = [],
    timeout: Duration = .seconds(10)
) async throws -> HTTPReply {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (k, v) in headers { request.headers.add(name: k, value: v) }
    if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
    let buffer = try await response.body.collect(upTo: 256 << 20)
    return HTTPReply(status: Int(response.status.code), headers: response.headers, body: Data(buffer.readableBytesView))
}

/// JSON-encodes a dictionary literal for request bodies.
public func jsonBody(_ object: Any) -> Data {
    (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
}
