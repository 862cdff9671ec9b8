import Testing
import TapperCore

@testable import TapperGateway

@Suite struct RateLimiterTests {
    @Test func keysHaveTheirOwnBucketsAndMemoryIsBounded() throws {
        let limiter = RateLimiter(limit: try RateLimit(parsing: "2/s"), key: .clientIP)
        #expect(limiter.take("10.0.0.1", now: 0).allowed)
        #expect(limiter.take("10.0.0.1", now: 0).allowed)
        #expect(!limiter.take("10.0.0.1", now: 0).allowed)
        #expect(limiter.take("10.0.0.2", now: 0).allowed, "another client has its own budget")
        for i in 0..<(RateLimiter.stripeCount * RateLimiter.maxKeysPerStripe * 2) { _ = limiter.take("k\(i)", now: 0) }
        #expect(limiter.keyCount <= RateLimiter.stripeCount * RateLimiter.maxKeysPerStripe)
    }

    @Test func keySpellings() throws {
        #expect(try RateLimiter.Key(parsing: "ip") == .clientIP)
        #expect(try RateLimiter.Key(parsing: "Subject") == .subject)
        #expect(try RateLimiter.Key(parsing: "header:X-Client") == .header("x-client"))
        #expect(throws: FieldError.self) { try RateLimiter.Key(parsing: "header:") }
        #expect(throws: FieldError.self) { try RateLimiter.Key(parsing: "cookie") }
    }

    @Test func theAnswerCarriesRetryAfterAndRateLimitFields() throws {
        let e = GatewayError.rateLimited(try RateLimit(parsing: "100/s"), key: "client", .init(allowed: false, remaining: 0, retryAfterSeconds: 1, resetSeconds: 1))
        #expect(e.status.code == 429 && e.code == "rate_limited")
        #expect(e.headers.contains(.init(name: "Retry-After", value: "1")))
        #expect(e.headers.contains(.init(name: "RateLimit-Policy", value: #""gateway";q=100;w=1"#)))
        #expect(e.headers.contains(.init(name: "RateLimit", value: #""gateway";r=0;t=1"#)))
    }
}
