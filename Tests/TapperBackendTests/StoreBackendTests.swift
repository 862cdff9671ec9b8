import Logging
import Synchronization
import Testing
import TapperCore
@testable import TapperRegistry

/// ``StoreBackend``'s own logic (conflict planning, stale reads, 503s) on an in-process store
/// that can be switched off, with no server involved.
@Suite struct StoreBackendTests {
    /// A ``CatalogStore`` in a Mutex; `down` makes every call fail like an unreachable store.
    final class SwitchableStore: CatalogStore {
        struct State {
            var index: UInt64 = 0
            var records: [String: InstanceRecord] = [:]
            var down = false
            /// Written by "another registry" just before our next write, which then loses.
            var intruder: InstanceRecord?
            var lostWrites = 0
        }
        let state = Mutex(State())
        let displayName = "switchable://test"
        struct Down: Error {}

        func setDown(_ down: Bool) { state.withLock { $0.down = down } }

        func load() throws -> StoreRead {
            try state.withLock { s in
                if s.down { throw Down() }
                return StoreRead(snapshot: CatalogSnapshot(index: s.index, instances: Array(s.records.values)), guardToken: s.index)
            }
        }

        func write(_ record: InstanceRecord, guard token: UInt64) throws -> InstanceRecord? {
            try state.withLock { s in
                if s.down { throw Down() }
                if let other = s.intruder {
                    s.intruder = nil
                    s.index += 1
                    s.records["\(other.service)/\(other.instanceID)"] = other
                }
                guard s.index == token else {
                    s.lostWrites += 1
                    return nil
                }
                s.index += 1
                var r = record
                r.modifyIndex = s.index
                if r.createIndex == 0 { r.createIndex = s.index }
                s.records["\(r.service)/\(r.instanceID)"] = r
                return r
            }
        }

        func refresh(service: String, instanceID: String) throws -> Bool {
            try state.withLock { s in
                if s.down { throw Down() }
                return s.records["\(service)/\(instanceID)"] != nil
            }
        }

        func remove(service: String, instanceID: String) throws -> Bool {
            try state.withLock { s in
                if s.down { throw Down() }
                guard s.records.removeValue(forKey: "\(service)/\(instanceID)") != nil else { return false }
                s.index += 1
                return true
            }
        }

        func notifications(_ changed: @escaping @Sendable () -> Void) async {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(1)) }
        }
    }

    static func reg(_ routes: [String], version: String = "1.0.0") -> ServiceRegistration {
        ServiceRegistration(url: "http://127.0.0.1:9001", version: version, routes: routes.map { RouteSpec(methods: ["GET"], path: $0) })
    }

    @Test func planDecidesCreateUpdateRefreshAndConflictFromTheCatalog() throws {
        let existing = InstanceRecord(service: "users", instanceID: "a", registration: Self.reg(["/users/{id}"]), createIndex: 3, modifyIndex: 5)
        let catalog = CatalogSnapshot(index: 5, instances: [existing])
        #expect(try RegistryBackendTestAccess.plan("users", "a", Self.reg(["/users/{id}"]), catalog) == .refresh(existing))
        guard case .write(let updated, let created) = try RegistryBackendTestAccess.plan("users", "a", Self.reg(["/users/{id}"], version: "2.0.0"), catalog) else {
            Issue.record("expected a write")
            return
        }
        #expect(!created && updated.createIndex == 3 && updated.registration.version == "2.0.0")
        guard case .write(let fresh, true) = try RegistryBackendTestAccess.plan("users", "b", Self.reg(["/users/{id}"]), catalog) else {
            Issue.record("expected a creation")
            return
        }
        #expect(fresh.createIndex == 0)
        #expect(throws: RegistryBackendError.self) { try RegistryBackendTestAccess.plan("orders", "x", Self.reg(["/users/{user}"]), catalog) }
    }

    @Test func storeDownGives503NamingTheStoreAndStaleReadsThenRecovers() async throws {
        let store = SwitchableStore()
        let backend = StoreBackend(store: store, logger: .init(label: "t"))
        _ = try await backend.register(service: "users", instanceID: "a", registration: Self.reg(["/users/{id}"]))
        store.setDown(true)
        do {
            _ = try await backend.register(service: "users", instanceID: "b", registration: Self.reg(["/users/{id}"]))
            Issue.record("write accepted while the store is down")
        } catch let e as RegistryBackendError {
            #expect(e.description.contains("switchable://test"))
            guard case .unavailable = e.kind else { Issue.record("\(e)"); return }
        }
        await #expect(throws: RegistryBackendError.self) { _ = try await backend.heartbeat(service: "users", instanceID: "a") }
        let stale = try await backend.snapshot()
        #expect(stale.stale && stale.has("users", "a"))
        store.setDown(false)
        let fresh = try await backend.snapshot()
        #expect(!fresh.stale)
        #expect(try await backend.register(service: "users", instanceID: "b", registration: Self.reg(["/users/{id}"])).created)
    }

    @Test func aLostRaceIsRetriedOnTheNewCatalogAndItsConflictsHold() async throws {
        let store = SwitchableStore()
        let backend = StoreBackend(store: store, logger: .init(label: "t"))
        // Another registry writes an unrelated instance in between: ours is retried and kept.
        store.state.withLock {
            $0.intruder = InstanceRecord(service: "orders", instanceID: "o", registration: Self.reg(["/orders/{id}"]), createIndex: 0, modifyIndex: 0)
        }
        #expect(try await backend.register(service: "users", instanceID: "a", registration: Self.reg(["/users/{id}"])).created)
        #expect(store.state.withLock { $0.lostWrites } == 1)
        #expect(try await backend.snapshot().allInstances.count == 2)
        // Another registry claims our route in between: the retry sees it and refuses (409).
        store.state.withLock {
            $0.intruder = InstanceRecord(service: "billing", instanceID: "b", registration: Self.reg(["/invoices/{id}"]), createIndex: 0, modifyIndex: 0)
        }
        do {
            _ = try await backend.register(service: "payments", instanceID: "p", registration: Self.reg(["/invoices/{invoice}"]))
            Issue.record("the route claimed in between was granted twice")
        } catch let e as RegistryBackendError {
            guard case .conflict(_, _, let owner) = e.kind else { Issue.record("\(e)"); return }
            #expect(owner == "billing")
        }
        #expect(store.state.withLock { $0.lostWrites } == 2)
    }

    @Test func concurrentRegistrationsThroughOneBackendLoseNone() async throws {
        let store = SwitchableStore()
        let backend = StoreBackend(store: store, logger: .init(label: "t"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask { _ = try await backend.register(service: "users", instanceID: "i\(i)", registration: Self.reg(["/users/{id}"])) }
            }
            try await group.waitForAll()
        }
        #expect(try await backend.snapshot().allInstances.count == 50)
        #expect(store.state.withLock { $0.lostWrites } == 0, "writers in one process queue instead of racing")
    }
}

/// Reaches the internal planner.
enum RegistryBackendTestAccess {
    static func plan(_ service: String, _ id: String, _ r: ServiceRegistration, _ c: CatalogSnapshot) throws -> StoreBackend<StoreBackendTests.SwitchableStore>.RegisterPlan {
        try StoreBackend<StoreBackendTests.SwitchableStore>.plan(service: service, instanceID: id, registration: r, in: c)
    }
}
