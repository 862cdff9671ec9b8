import Foundation
import Testing
import TapperCore
import TapperRegistry
import TapperTesting

/// One contract, every backend: memory, a custom backend written in this test target, and the
/// shared stores against real redis-server and etcd processes started by the tests.
@Suite(.serialized) struct BackendConformanceTests {
    @Test(arguments: BackendKind.runnable)
    func registerUpdateSnapshotDeregister(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            let first = try await b.register(service: "users", instanceID: "a", registration: registration(routes: ["GET /users/{id}"]))
            #expect(first.created)
            #expect(first.record.modifyIndex > 0)
            #expect(first.record.createIndex == first.record.modifyIndex)

            let snap = try await b.snapshot()
            #expect(snap.has("users", "a"))
            #expect(snap.index >= first.record.modifyIndex)
            #expect(snap.stale == false)
            #expect(snap.service(named: "users")?.instances.first?.registration.routes == [RouteSpec(methods: ["GET"], path: "/users/{id}")])

            let updated = try await b.register(service: "users", instanceID: "a", registration: registration(routes: ["GET /users/{id}"], version: "2.0.0"))
            #expect(updated.created == false)
            #expect(updated.record.registration.version == "2.0.0")
            #expect(updated.record.modifyIndex > first.record.modifyIndex)
            #expect(updated.record.createIndex == first.record.createIndex)
            let afterUpdate = try await b.snapshot()
            #expect(afterUpdate.index > snap.index)
            #expect(afterUpdate.service(named: "users")?.instances.first?.registration.version == "2.0.0")

            _ = try await b.register(service: "orders", instanceID: "o1", registration: registration("http://127.0.0.1:9002"))
            #expect(try await b.snapshot().services.map(\.name) == ["orders", "users"])

            #expect(try await b.deregister(service: "users", instanceID: "a"))
            #expect(try await b.deregister(service: "users", instanceID: "a") == false)
            let end = try await b.snapshot()
            #expect(!end.has("users", "a"))
            #expect(end.has("orders", "o1"))
            #expect(end.index > afterUpdate.index)
        }
    }

    @Test(arguments: BackendKind.runnable)
    func refusesInvalidAndConflictingRegistrations(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            _ = try await b.register(service: "users", instanceID: "a", registration: registration(routes: ["GET /users/{id}"]))
            await #expect(throws: RegistryBackendError.self) {
                _ = try await b.register(service: "Bad_Name", instanceID: "a", registration: registration())
            }
            do {
                _ = try await b.register(service: "orders", instanceID: "x", registration: registration(routes: ["GET /users/{user_id}"]))
                Issue.record("a second owner of GET /users/{id} was accepted")
            } catch let error as RegistryBackendError {
                guard case .conflict(_, _, let owner) = error.kind else { Issue.record("expected a conflict, got \(error)"); return }
                #expect(owner == "users")
            }
            #expect(try await b.snapshot().service(named: "orders") == nil)
        }
    }

    @Test(arguments: BackendKind.runnable)
    func heartbeatKeepsAnInstanceAndTTLExpiresTheOther(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            let ttl = kind.shortTTL
            #expect(try await b.heartbeat(service: "users", instanceID: "nobody") == false)
            let started = ContinuousClock.now
            _ = try await b.register(service: "users", instanceID: "kept", registration: registration(ttl: ttl))
            _ = try await b.register(service: "users", instanceID: "dropped", registration: registration("http://127.0.0.1:9002", ttl: ttl))
            var watcher = Watcher(b.watch())
            try await watcher.next { $0.has("users", "dropped") }
            // Heartbeat "kept" well within its TTL until "dropped" is gone from the watch.
            let beating = Task {
                while !Task.isCancelled {
                    _ = try? await b.heartbeat(service: "users", instanceID: "kept")
                    try? await Task.sleep(for: .milliseconds(Int(ttl * 250)))
                }
            }
            defer { beating.cancel() }
            let expired = try await watcher.next(timeout: .seconds(20)) { !$0.has("users", "dropped") }
            let lived = ContinuousClock.now - started
            #expect(expired.has("users", "kept"), "the heartbeated instance must survive")
            #expect(lived >= .milliseconds(Int64(ttl * 1000) - 50), "expired after \(lived), before its TTL")
            #expect(try await b.heartbeat(service: "users", instanceID: "dropped") == false)
            #expect(try await b.heartbeat(service: "users", instanceID: "kept"))
        }
    }

    @Test(arguments: BackendKind.runnable)
    func watchDeliversEachChange(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            var watcher = Watcher(b.watch())
            let initial = try await watcher.next()
            #expect(initial.allInstances.isEmpty)
            var lastIndex = initial.index
            let steps: [(String, @Sendable (CatalogSnapshot) -> Bool, @Sendable () async throws -> Void)] = [
                ("register a", { $0.has("users", "a") }, { _ = try await b.register(service: "users", instanceID: "a", registration: registration()) }),
                ("register b", { $0.has("users", "b") }, { _ = try await b.register(service: "users", instanceID: "b", registration: registration("http://127.0.0.1:9002")) }),
                (
                    "update a", { $0.service(named: "users")?.instances.first?.registration.version == "1.1.0" },
                    { _ = try await b.register(service: "users", instanceID: "a", registration: registration(version: "1.1.0")) }
                ),
                ("deregister a", { !$0.has("users", "a") && $0.has("users", "b") }, { _ = try await b.deregister(service: "users", instanceID: "a") }),
            ]
            for (what, condition, change) in steps {
                try await change()
                let s = try await watcher.next(until: condition)
                #expect(s.index > lastIndex, "\(what): the index must grow")
                lastIndex = s.index
            }
        }
    }

    @Test(arguments: BackendKind.runnable)
    func concurrentRegistrationsFromSeveralClientsLoseNone(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.withPeer { peer1 in
                try await h.withPeer { peer2 in
                    let clients = [h.backend, peer1, peer2]
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for (c, client) in clients.enumerated() {
                            for i in 0..<8 {
                                group.addTask {
                                    _ = try await client.register(
                                        service: "svc\(i % 3)", instanceID: "c\(c)-\(i)",
                                        registration: registration("http://127.0.0.1:\(9000 + c * 10 + i)", routes: ["GET /svc\(i % 3)/items"])
                                    )
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    let snap = try await h.backend.snapshot()
                    let expected = Set((0..<3).flatMap { c in (0..<8).map { i in "svc\(i % 3)/c\(c)-\(i)" } })
                    #expect(Set(snap.allInstances.map { "\($0.service)/\($0.instanceID)" }) == expected)
                }
            }
        }
    }

    /// Two services racing for one route from different clients: exactly one wins, even when the
    /// clients are different registries on one store.
    @Test(arguments: BackendKind.runnable)
    func routeOwnershipHoldsAcrossClients(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            try await h.withPeer { peer in
                for round in 0..<5 {
                    let path = "GET /race\(round)/{id}"
                    async let one = attempt { try await h.backend.register(service: "alpha", instanceID: "r\(round)", registration: registration(routes: [path])) }
                    async let two = attempt { try await peer.register(service: "beta", instanceID: "r\(round)", registration: registration("http://127.0.0.1:9002", routes: [path])) }
                    let results = await [one, two]
                    let won = results.filter { if case .success = $0 { return true } else { return false } }.count
                    #expect(won == 1, "round \(round): \(results)")
                    for case .failure(let e) in results {
                        guard let e = e as? RegistryBackendError, case .conflict = e.kind else { Issue.record("round \(round): \(e)"); continue }
                    }
                }
                let owners = try await h.backend.snapshot().allInstances.count
                #expect(owners == 5)
            }
        }
    }

    @Test(arguments: BackendKind.shared)
    func watchResumesAfterTheStoreRestarts(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            _ = try await b.register(service: "users", instanceID: "a", registration: registration())
            var watcher = Watcher(b.watch())
            try await watcher.next { $0.has("users", "a") }
            try await h.server!.kill()
            try await h.server!.start()
            // The store is back on the same port and data directory: the backend reconnects by
            // itself and the watch delivers a change made after the restart.
            try await poll("a registration succeeds after the restart", timeout: .seconds(20), every: .milliseconds(50)) {
                (try? await b.register(service: "users", instanceID: "b", registration: registration("http://127.0.0.1:9002"))) != nil
            }
            let s = try await watcher.next(timeout: .seconds(20)) { $0.has("users", "b") }
            #expect(s.has("users", "a"), "registrations persisted in the store survive its restart")
        }
    }

    @Test(arguments: BackendKind.shared)
    func storeDownMeansUnavailableWritesAndStaleReadsThenRecovery(_ kind: BackendKind) async throws {
        try await withBackend(kind) { h in
            let b = h.backend
            _ = try await b.register(service: "users", instanceID: "a", registration: registration(ttl: 60))
            #expect(try await b.snapshot().stale == false)
            try await h.server!.kill()
            do {
                _ = try await b.register(service: "users", instanceID: "b", registration: registration("http://127.0.0.1:9002"))
                Issue.record("a write succeeded while the store was down")
            } catch let error as RegistryBackendError {
                guard case .unavailable(let store, _) = error.kind else { Issue.record("expected unavailable, got \(error)"); return }
                #expect(store == b.displayName)
                #expect(error.description.contains("127.0.0.1:\(h.server!.port)"))
            }
            let stale = try await b.snapshot()
            #expect(stale.stale)
            #expect(stale.has("users", "a"))
            try await h.server!.start()
            try await poll("reads are fresh again", timeout: .seconds(20), every: .milliseconds(50)) {
                (try? await b.snapshot().stale) == false
            }
            _ = try await b.register(service: "users", instanceID: "b", registration: registration("http://127.0.0.1:9002"))
            #expect(try await b.snapshot().has("users", "b"))
        }
    }
}

/// The outcome of `body` as a value (for racing calls).
func attempt<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
    do {
        return .success(try await body())
    } catch {
        return .failure(error)
    }
}
