import Hummingbird
import TapperCore

/// Bearer-token checks for the registry API.
///
/// - Writes need the write token when one is configured; the read-only token gets a 403 there.
/// - With `protectReads`, reads need either token too (`GET /v1/health` stays open for probes).
///
/// Tokens are read through closures on every request, so a rotated token file takes effect
/// without a restart. Comparison is constant-time in the token's content, and no token is ever
/// echoed in an error.
struct TokenAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: @Sendable () -> String?
    let readToken: @Sendable () -> String?
    let protectReads: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let isRead = request.method == .get || request.method == .head
        if isRead {
            guard protectReads, request.uri.path != "/v1/health" else { return try await next(request, context) }
            let presented = request.headers[.authorization].flatMap(BearerToken.parse)
            guard let presented, [token(), readToken()].contains(where: { $0.map { BearerToken.constantTimeEqual(presented, $0) } ?? false }) else {
                throw Self.unauthorized(presented == nil ? "this registry requires a bearer token for reads (set TAPPER_TOKEN or --token)" : "the bearer token is not valid")
            }
            return try await next(request, context)
        }
        guard let expected = token() else { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap(BearerToken.parse)
        guard let presented else {
            throw Self.unauthorized("this registry requires a bearer token for writes (set TAPPER_TOKEN or --token)")
        }
        if BearerToken.constantTimeEqual(presented, expected) { return try await next(request, context) }
        if let read = readToken(), BearerToken.constantTimeEqual(presented, read) {
            throw APIError(.forbidden, code: "forbidden", message: "the read-only token cannot change the registry; use the write token")
        }
        throw Self.unauthorized("the bearer token is not valid")
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message: message, headers: [.wwwAuthenticate: #"Bearer realm="tapper-registry""#])
    }
}
