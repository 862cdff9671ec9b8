import Testing
import TapperCore

@Suite struct TokenClaimRulesTests {
    let now = 1_800_000_000.0

    @Test func expiryIsRequiredAndHonouredWithLeeway() {
        let rules = TokenClaimRules(leewaySeconds: 30)
        #expect(rules.violation(of: .init(), now: now) == .missingExpiry)
        #expect(rules.violation(of: .init(expiresAt: now + 1), now: now) == nil)
        // Inside the leeway an expired token still passes; at its end it does not.
        #expect(rules.violation(of: .init(expiresAt: now - 29), now: now) == nil)
        #expect(rules.violation(of: .init(expiresAt: now - 30), now: now) == .expired)
        #expect(TokenClaimRules(leewaySeconds: 0).violation(of: .init(expiresAt: now), now: now) == .expired)
    }

    @Test func notBeforeWithLeeway() {
        let rules = TokenClaimRules(leewaySeconds: 10)
        #expect(rules.violation(of: .init(expiresAt: now + 100, notBefore: now + 10), now: now) == nil)
        #expect(rules.violation(of: .init(expiresAt: now + 100, notBefore: now + 11), now: now) == .notYetValid)
    }

    @Test func issuerAndAudience() {
        let rules = TokenClaimRules(issuer: "https://id", audiences: ["a", "b"], leewaySeconds: 0)
        let ok = TokenClaimRules.Claims(expiresAt: now + 60, issuer: "https://id", audiences: ["x", "b"])
        #expect(rules.violation(of: ok, now: now) == nil)
        var c = ok
        c.issuer = nil
        #expect(rules.violation(of: c, now: now) == .wrongIssuer)
        c = ok
        c.audiences = []
        #expect(rules.violation(of: c, now: now) == .wrongAudience)
        c.audiences = ["c"]
        #expect(rules.violation(of: c, now: now) == .wrongAudience)
        // No audience configured: any (or none) passes.
        #expect(TokenClaimRules(issuer: "https://id").violation(of: c, now: now) == nil)
    }
}
