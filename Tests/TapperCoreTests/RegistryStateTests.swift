import Testing
import TapperCore
import TapperTestKit

@Suite struct RegistryStateTests {
    let clock = MockClock()

    func registration(_ port: Int = 9000, routes: [RouteSpec] = [RouteSpec(methods: ["GET"], path: "/users/{id}")], ttl: Double = 30) -> ServiceRegistration {
        ServiceRegistration(url: "http://127.0.0.1:\(port)", routes: routes, ttlSeconds: ttl)
    }

    @Test func registerThenUpdate() throws {
        var s = RegistryState(clock: clock)
        let first = try s.register(service: "users", instanceID: "a", registration: registration())
        guard case .created(let r) = first else { Issue.record("expected created"); return }
        #expect(r.createIndex == 1 && s.index == 1)
        // Same registration again: refresh only, index unchanged.
        guard case .updated = try s.register(service: "users", instanceID: "a", registration: registration()) else { Issue.record("expected updated"); return }
        #expect(s.index == 1)
        var changed = registration()
        changed.version = "2.0.0"
        let second = try s.register(service: "users", instanceID: "a", registration: changed)
        #expect(second.record.modifyIndex == 2 && second.record.createIndex == 1)
        #expect(s.snapshot().allInstances.first?.registration.version == "2.0.0")
    }

    @Test func ttlExpiryOnTheMockClock() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration(ttl: 10))
        _ = try s.register(service: "users", instanceID: "b", registration: registration(9001, ttl: 30))
        clock.advance(by: .seconds(9))
        do { let e = s.expire(); #expect(e.isEmpty) }
        do { let ok = s.heartbeat(service: "users", instanceID: "a"); #expect(ok) }
        clock.advance(by: .seconds(9))
        do { let e = s.expire(); #expect(e.isEmpty) }  // heartbeat pushed the deadline to t=19
        let before = s.index
        clock.advance(by: .seconds(1.5))
        let expired = s.expire()
        #expect(expired.map(\.instanceID) == ["a"])
        #expect(s.index == before + 1)
        #expect(s.snapshot().allInstances.map(\.instanceID) == ["b"])
        do { let ok = s.heartbeat(service: "users", instanceID: "a"); #expect(!ok) }
    }

    @Test func snapshotReportsAgesAndNextDeadline() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration(ttl: 10))
        clock.advance(by: .seconds(4))
        let r = try #require(s.snapshot().allInstances.first)
        #expect(r.heartbeatAgeSeconds == 4)
        #expect(r.expiresInSeconds == 6)
        #expect(s.nextDeadline == MockClock.Instant(offset: .seconds(10)))
    }

    @Test func heartbeatDoesNotBumpTheIndex() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration())
        let i = s.index
        do { let ok = s.heartbeat(service: "users", instanceID: "a"); #expect(ok) }
        #expect(s.index == i)
    }

    @Test func deregister() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration())
        let first = s.deregister(service: "users", instanceID: "a")
        let second = s.deregister(service: "users", instanceID: "a")
        #expect(first?.instanceID == "a")
        #expect(second == nil)
        #expect(s.index == 2)
        #expect(s.count == 0)
    }

    @Test func conflictingRouteNamesTheOwner() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration())
        #expect(throws: RegistryState<MockClock>.RegisterError.conflict(field: "routes[0]", route: "GET /users/{uid}", owner: "users")) {
            _ = try s.register(service: "people", instanceID: "p", registration: registration(9100, routes: [RouteSpec(methods: ["GET"], path: "/users/{uid}")]))
        }
        // A second instance of the owner is fine, and so is another method.
        _ = try s.register(service: "users", instanceID: "b", registration: registration(9001))
        _ = try s.register(service: "people", instanceID: "p", registration: registration(9100, routes: [RouteSpec(methods: ["POST"], path: "/users/{uid}")]))
        // Once every owner instance is gone, the route is free again.
        _ = s.deregister(service: "users", instanceID: "a")
        _ = s.deregister(service: "users", instanceID: "b")
        _ = try s.register(service: "people", instanceID: "p", registration: registration(9100, routes: [RouteSpec(methods: ["GET", "POST"], path: "/users/{uid}")]))
    }

    @Test func anyMethodConflictsWithEveryMethod() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration(routes: [RouteSpec(methods: ["DELETE"], path: "/x")]))
        #expect(throws: RegistryState<MockClock>.RegisterError.self) {
            _ = try s.register(service: "other", instanceID: "o", registration: registration(9100, routes: [RouteSpec(path: "/x")]))
        }
    }

    @Test func expiryReleasesRoutes() throws {
        var s = RegistryState(clock: clock)
        _ = try s.register(service: "users", instanceID: "a", registration: registration(ttl: 5))
        clock.advance(by: .seconds(6))
        _ = s.expire()
        _ = try s.register(service: "people", instanceID: "p", registration: registration(9100))
    }

    @Test func invalidRegistrationNamesTheField() {
        var s = RegistryState(clock: clock)
        #expect(throws: RegistryState<MockClock>.RegisterError.invalid(FieldError(field: "service", message: "'Bad_Name' is not a valid service name: use lowercase letters, digits and '-' (a DNS label)"))) {
            _ = try s.register(service: "Bad_Name", instanceID: "a", registration: registration())
        }
    }
}
