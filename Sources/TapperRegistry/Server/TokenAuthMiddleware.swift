import Hummingbird

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
            let presented = request.headers[.authorization].flatMap(Self.bearer)
            guard let presented, [token(), readToken()].contains(where: { $0.map { Self.constantTimeEqual(presented, $0) } ?? false }) else {
                throw Self.unauthorized(presented == nil ? "this registry requires a bearer token for reads (set TAPPER_TOKEN or --token)" : "the bearer token is not valid")
            }
            return try await next(request, context)
        }
        guard let expected = token() else { return try await next(request, context) }
        let presented = request.headers[.authorization].flatMap(Self.bearer)
        guard let presented else {
            throw Self.unauthorized("this registry requires a bearer token for writes (set TAPPER_TOKEN or --token)")
        }
        if Self.constantTimeEqual(presented, expected) { return try await next(request, context) }
        if let read = readToken(), Self.constantTimeEqual(presented, read) {
            throw APIError(.forbidden, code: "forbidden", message: "the read-only token cannot change the registry; use the write token")
        }
        throw Self.unauthorized("the bearer token is not valid")
    }

    static func unauthorized(_ message: String) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message: message, headers: [.wwwAuthenticate: #"Bearer realm="tapper-registry""#])
    }

    static func bearer(_ header: String) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        var token = Substring(parts[1])
        while let f = token.first, f == " " || f == "\t" { token = token.dropFirst() }
        while let l = token.last, l == " " || l == "\t" { token = token.dropLast() }
        return token.isEmpty ? nil : String(token)
    }

    /// Compares without an early exit, so response time does not reveal how much matched.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0
            let r = i < y.count ? y[i] : 0
            diff |= l ^ r
        }
        return diff == 0
    }
}

