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

@Suite struct RouteLimitersTests {
    func record(_ id: String, index: UInt64, limit: String?, routes: [RouteSpec]) throws -> InstanceRecord {
        InstanceRecord(
            service: "shop", instanceID: id,
            registration: ServiceRegistration(url: "http://127.0.0.1:900\(index)", routes: routes, rateLimit: try limit.map { try RateLimit(parsing: $0) }),
            createIndex: index, modifyIndex: index
        )
    }

    @Test func servicesAndRoutesGetTheirOwnLimitersAndTheStrictestWins() throws {
        let search = RouteSpec(methods: ["GET"], path: "/search", rateLimit: try RateLimit(parsing: "10/s"))
        let catalog = CatalogSnapshot(index: 3, instances: [
            try record("a", index: 1, limit: "100/s", routes: [search, RouteSpec(methods: ["GET"], path: "/items")]),
            try record("b", index: 2, limit: "60/m", routes: [RouteSpec(methods: ["GET"], path: "/search", rateLimit: try RateLimit(parsing: "5/s"))]),
        ])
        let snapshot = RoutingSnapshot(catalog: catalog, limiters: RateLimiterCache())
        let byPath = Dictionary(uniqueKeysWithValues: zip(snapshot.table.entries.map(\.template.raw), snapshot.entryLimiters))
        #expect(byPath["/search"]??.service?.limit.description == "60/m", "1/s is stricter than 100/s")
        #expect(byPath["/search"]??.route?.limit.description == "5/s")
        #expect(byPath["/items"]??.route == nil && byPath["/items"]??.service != nil)
        #expect(byPath["/items"]??.service === byPath["/search"]??.service, "one budget for the whole service")
    }

    @Test func bucketsSurviveAnUnrelatedChangeAndResetWhenTheLimitChanges() throws {
        let cache = RateLimiterCache()
        let routes = [RouteSpec(methods: ["GET"], path: "/items", rateLimit: try RateLimit(parsing: "2/m"))]
        let first = RoutingSnapshot(catalog: CatalogSnapshot(index: 1, instances: [try record("a", index: 1, limit: nil, routes: routes)]), limiters: cache)
        let limiter = try #require(first.entryLimiters[0]?.route)
        #expect(limiter.take("c", now: 0).allowed && limiter.take("c", now: 0).allowed && !limiter.take("c", now: 0).allowed)
        let second = RoutingSnapshot(
            catalog: CatalogSnapshot(index: 2, instances: [try record("a", index: 1, limit: nil, routes: routes), try record("b", index: 2, limit: nil, routes: routes)]),
            limiters: cache
        )
        #expect(second.entryLimiters[0]?.route === limiter, "another instance joining keeps the budget")
        #expect(!(second.entryLimiters[0]?.route?.take("c", now: 0).allowed ?? true))
        let changed = [RouteSpec(methods: ["GET"], path: "/items", rateLimit: try RateLimit(parsing: "3/m"))]
        let third = RoutingSnapshot(catalog: CatalogSnapshot(index: 3, instances: [try record("a", index: 3, limit: nil, routes: changed)]), limiters: cache)
        #expect(third.entryLimiters[0]?.route !== limiter)
        #expect(third.entryLimiters[0]?.route?.take("c", now: 0).allowed == true)
        let none = RoutingSnapshot(catalog: CatalogSnapshot(index: 4, instances: [try record("a", index: 4, limit: nil, routes: [RouteSpec(path: "/x")])]), limiters: cache)
        #expect(none.entryLimiters.count == 1 && none.entryLimiters[0] == nil)
    }
}
