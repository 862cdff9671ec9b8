import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TapperCore

/// The JSON-over-HTTP plumbing shared by the registry and gateway clients.
struct HTTPJSONClient: Sendable {
    let baseURL: String
    let token: String?
    let http: HTTPClient
    let timeout: Duration
    /// What to call the server in messages, e.g. "registry".
    let role: String
    /// What to tell the user to start when nothing answers.
    let startHint: String

    init(baseURL: String, token: String?, http: HTTPClient, timeout: Duration, role: String, startHint: String) {
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
        self.token = token
        self.http = http
        self.timeout = timeout
        self.role = role
        self.startHint = startHint
    }

    var authority: String {
        var s = Substring(baseURL)
        if let r = s.range(of: "://") { s = s[r.upperBound...] }
        return String(s)
    }

    struct Reply {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
    }

    func send(_ method: HTTPMethod, _ path: String, body: Data? = nil, timeout overrideTimeout: Duration? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let token, !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let limit = overrideTimeout ?? timeout
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(limit.nanoseconds))
            let buffer = try await response.body.collect(upTo: 64 << 20)
            return Reply(status: Int(response.status.code), headers: response.headers, body: Data(buffer.readableBytesView))
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw TapperClientError(.timeout, message: "\(role) at \(authority) did not answer within \(limit); is it overloaded?")
        } catch let error as HTTPClientError where error == .connectTimeout {
            throw TapperClientError(.unreachable, message: "\(role) at \(authority) did not accept the connection in time; is '\(startHint)' running?")
        } catch let error as TapperClientError {
            throw error
        } catch let error as HTTPClientError {
            throw TapperClientError(.unreachable, message: "\(role) at \(authority) could not be reached (\(error)); is '\(startHint)' running?")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw TapperClientError(.unreachable, message: "\(role) at \(authority) refused the connection; is '\(startHint)' running?")
        }
    }

    /// Decodes a 2xx body, or turns an error body into a ``TapperClientError``.
    func decode<T: Decodable>(_ type: T.Type, from reply: Reply) throws -> T {
        try check(reply)
        do {
            return try JSONDecoder().decode(T.self, from: reply.body)
        } catch {
            throw TapperClientError(.invalidResponse, message: "\(role) at \(authority) sent an answer that could not be read: \(error)")
        }
    }

    struct ErrorBody: Decodable {
        struct Detail: Decodable {
            var code: String
            var message: String
            var field: String?
        }
        var error: Detail
    }

    func check(_ reply: Reply) throws {
        guard (200..<300).contains(reply.status) else {
            if let e = try? JSONDecoder().decode(ErrorBody.self, from: reply.body) {
                throw TapperClientError(.api(status: reply.status, code: e.error.code, field: e.error.field), message: "\(role) refused the request (\(reply.status)): \(e.error.message)")
            }
            throw TapperClientError(.api(status: reply.status, code: "http_\(reply.status)", field: nil), message: "\(role) at \(authority) answered HTTP \(reply.status)")
        }
    }
}
