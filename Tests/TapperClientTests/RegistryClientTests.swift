import Testing
import TapperClient
import TapperCore
import TapperTesting

@Suite struct RegistryClientTests {
    let registration = ServiceRegistration(url: "http://127.0.0.1:9500", routes: [RouteSpec(methods: ["GET"], path: "/items/{id:int}")])

    @Test func roundTrip() async throws {
        try await withLiveRegistry { url, _ in
            let client = RegistryClient(baseURL: url)
            let (record, created) = try await client.register(service: "items", instanceID: "i1", registration: registration)
            #expect(created)
            #expect(record.registration.routes.first?.path == "/items/{id:int}")
            let (_, createdAgain) = try await client.register(service: "items", instanceID: "i1", registration: registration)
            #expect(!createdAgain)
            #expect(try await client.heartbeat(service: "items", instanceID: "i1"))
            let snap = try await client.catalog()
            #expect(snap.allInstances.map(\.instanceID) == ["i1"])
            #expect(snap.allInstances.first?.expiresInSeconds ?? 0 > 25)
            #expect(try await client.deregister(service: "items", instanceID: "i1"))
            #expect(try await !client.heartbeat(service: "items", instanceID: "i1"))
        }
    }

    @Test func blockingCatalogReturnsTheNewIndex() async throws {
        try await withLiveRegistry { url, _ in
            let client = RegistryClient(baseURL: url)
            let start = try await client.catalog()
            async let next = client.catalog(index: start.index, wait: .seconds(10))
            _ = try await client.register(service: "items", instanceID: "i1", registration: registration)
            let changed = try await next
            #expect(changed.index > start.index)
        }
    }

    @Test func apiErrorsCarryStatusAndField() async throws {
        try await withLiveRegistry { url, _ in
            var bad = registration
            bad.ttlSeconds = -1
            do {
                _ = try await RegistryClient(baseURL: url).register(service: "items", instanceID: "i1", registration: bad)
                Issue.record("expected an error")
            } catch let e as TapperClientError {
                #expect(e.kind == .api(status: 400, code: "invalid", field: "ttl_seconds"))
            }
        }
    }

    @Test func unreachableRegistrySaysWhatToStart() async throws {
        do {
            _ = try await RegistryClient(baseURL: "http://127.0.0.1:1").catalog()
            Issue.record("expected an error")
        } catch let e as TapperClientError {
            #expect(e.kind == .unreachable)
            #expect(e.description.contains("tapper registry serve"))
        }
    }
}
