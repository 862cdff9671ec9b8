import Hummingbird

/// Requires `Authorization: Bearer <token>` on writes when a token is configured.
///
/// The token is read through a closure on every request, so a rotated token file takes effect
/// without a restart. Comparison is constant-time in the token's content.
struct TokenAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: @Sendable () -> String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method != .get, request.method != .head, let expected = token() else {
            return try await next(request, context)
        }
        let presented = request.headers[.authorization].flatMap(Self.bearer)
        guard let presented, Self.constantTimeEqual(presented, expected) else {
            throw APIError(
                .unauthorized,
                code: "unauthorized",
                message: presented == nil ? "this registry requires a bearer token for writes (set TAPPER_TOKEN or --token)" : "the bearer token is not valid",
                headers: [.wwwAuthenticate: #"Bearer realm="tapper-registry""#]
            )
        }
        return try await next(request, context)
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

