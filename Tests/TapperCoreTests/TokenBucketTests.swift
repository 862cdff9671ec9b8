import Testing
import TapperCore

@Suite struct TokenBucketTests {
    static let second: UInt64 = 1_000_000_000

    @Test func parsesLimits() throws {
        #expect(try RateLimit(parsing: "100/s") == RateLimit(requests: 100, windowNanos: Self.second))
        #expect(try RateLimit(parsing: "6000/m").windowSeconds == 60)
        #expect(try RateLimit(parsing: "5/hour").windowSeconds == 3600)
        #expect(try RateLimit(parsing: "10/m").description == "10/m")
        for bad in ["", "100", "0/s", "-1/s", "x/s", "10/d", "10/s/s"] {
            #expect(throws: FieldError.self, "\(bad)") { try RateLimit(parsing: bad) }
        }
    }

    @Test func burstThenRefusedThenRefilledAtTheRate() {
        let limit = RateLimit(requests: 3, windowNanos: Self.second)
        var b = TokenBucket(limit: limit, now: 0)
        #expect(b.take(limit, now: 0) == .init(allowed: true, remaining: 2, retryAfterSeconds: 0, resetSeconds: 1))
        #expect(b.take(limit, now: 0).allowed)
        #expect(b.take(limit, now: 0).remaining == 0)
        let refused = b.take(limit, now: 0)
        #expect(!refused.allowed && refused.remaining == 0 && refused.retryAfterSeconds == 1 && refused.resetSeconds == 1)
        // One token comes back every 333 ms.
        #expect(!b.take(limit, now: Self.second / 4).allowed)
        #expect(b.take(limit, now: Self.second / 3 + 1_000_000).allowed)
        #expect(!b.take(limit, now: Self.second / 3 + 2_000_000).allowed)
        #expect(b.isFull(limit, now: 10 * Self.second))
        // Refill never goes past the burst.
        for _ in 0..<3 { #expect(b.take(limit, now: 10 * Self.second).allowed) }
        #expect(!b.take(limit, now: 10 * Self.second).allowed)
    }

    @Test func retryAfterCountsWholeSecondsOfASlowWindow() {
        let limit = RateLimit(requests: 2, windowNanos: 60 * Self.second)
        var b = TokenBucket(limit: limit, now: 0)
        _ = b.take(limit, now: 0)
        _ = b.take(limit, now: 0)
        let refused = b.take(limit, now: 0)
        #expect(refused.retryAfterSeconds == 30, "a token every 30 s")
        #expect(refused.resetSeconds == 60)
        #expect(!b.isFull(limit, now: 59 * Self.second) && b.isFull(limit, now: 60 * Self.second))
    }

    @Test func accuracyOverManyRequests() {
        // 100/s offered 1,000/s for 10 s: 100 burst + 100 per second, within one request.
        let limit = RateLimit(requests: 100, windowNanos: Self.second)
        var b = TokenBucket(limit: limit, now: 0)
        var allowed = 0
        for i in 0..<10_000 where b.take(limit, now: UInt64(i) * 1_000_000).allowed { allowed += 1 }
        #expect(abs(allowed - 1100) <= 1, "\(allowed)")
    }
}
