/// The time and audience rules a verified JWT must also pass (RFC 7519 §4.1), kept apart from
/// signature checking so they can be tested with any clock.
///
/// `exp` is required (a token that never expires is refused), `nbf` and `iat` are optional.
/// `leeway` absorbs clock skew between the issuer and the gateway in both directions, as
/// Envoy's `clock_skew_seconds` does.
public struct TokenClaimRules: Sendable, Hashable {
    /// The `iss` a token must carry, or nil to accept any.
    public var issuer: String?
    /// A token must name at least one of these in `aud`; empty accepts any audience.
    public var audiences: [String]
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    public var leewaySeconds: Double

    public init(issuer: String? = nil, audiences: [String] = [], leewaySeconds: Double = 60) {
        self.issuer = issuer
        self.audiences = audiences
        self.leewaySeconds = leewaySeconds
    }

    /// The claims the rules look at, as decoded from a token's payload.
    public struct Claims: Sendable, Hashable {
        /// Seconds since the Unix epoch.
        public var expiresAt: Double?
        public var notBefore: Double?
        public var issuer: String?
        public var audiences: [String]
        public var subject: String?

        public init(expiresAt: Double? = nil, notBefore: Double? = nil, issuer: String? = nil, audiences: [String] = [], subject: String? = nil) {
            self.expiresAt = expiresAt
            self.notBefore = notBefore
            self.issuer = issuer
            self.audiences = audiences
            self.subject = subject
        }
    }

    /// Why a token was refused; the message is safe to show the client.
    public enum Violation: Error, Hashable, Sendable, CustomStringConvertible {
        case missingExpiry
        case expired
        case notYetValid
        case wrongIssuer
        case wrongAudience

        public var description: String {
            switch self {
            case .missingExpiry: "the token has no expiry (exp)"
            case .expired: "the token has expired"
            case .notYetValid: "the token is not valid yet (nbf)"
            case .wrongIssuer: "the token was not issued by the expected issuer"
            case .wrongAudience: "the token is not meant for this audience"
            }
        }
    }

    /// Checks `claims` at time `now` (seconds since the Unix epoch).
    /// - Returns: nil when the token passes, else the first rule it breaks.
    public func violation(of claims: Claims, now: Double) -> Violation? {
        guard let exp = claims.expiresAt else { return .missingExpiry }
        if now >= exp + leewaySeconds { return .expired }
        if let nbf = claims.notBefore, now + leewaySeconds < nbf { return .notYetValid }
        if let issuer, claims.issuer != issuer { return .wrongIssuer }
        if !audiences.isEmpty, !claims.audiences.contains(where: audiences.contains) { return .wrongAudience }
        return nil
    }
}
