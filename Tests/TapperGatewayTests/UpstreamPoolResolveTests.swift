import Dispatch
import NIOCore
import Testing
import TapperTesting
@testable import TapperGateway

#if canImport(Glibc)
import Glibc
#endif

/// Upstream host names are resolved off the reactor; IP literals never see the resolver.
@Suite struct UpstreamPoolResolveTests {
    /// What a test resolver saw: one entry per call, whether it ran on the reactor's thread.
    private final class Calls: Sendable {
        let onReactor = Locked<[Bool]>([])
        func record(_ inReactor: Bool) {
            onReactor.update { $0.append(inReactor) }
        }
    }

    private func makePool(on reactor: Reactor, connectTimeout: TimeAmount = .seconds(5)) async -> ReactorBound<UpstreamPool> {
        await reactor.submit { ReactorBound(UpstreamPool(reactor: reactor, maxIdlePerKey: 4, connectTimeout: connectTimeout)) }
    }

    /// Starts a connect on the reactor without waiting for it (a resolver that blocks the
    /// reactor must not hang the test) and returns its outcome later.
    private func startConnect(_ pool: ReactorBound<UpstreamPool>, on reactor: Reactor, host: String, port: Int) -> Locked<String?> {
        let outcome = Locked<String?>(nil)
        reactor.execute {
            pool.value.connect(host: host, port: port, key: "\(host):\(port)") { result in
                switch result {
                case .success(let handler):
                    outcome.set("connected")
                    handler.close()
                case .failure(.timedOut): outcome.set("timed out")
                case .failure(.failed(let error)): outcome.set("failed: \(error)")
                }
            }
        }
        return outcome
    }

    @Test func aNameIsResolvedOffTheReactorWhileTheReactorKeepsServing() async throws {
        try await withReactor { reactor in
            let listener = try Sockets.listen(host: "127.0.0.1", port: 0)
            defer { close(listener.fd) }
            let calls = Calls()
            let gate = DispatchSemaphore(value: 0)
            // Should the lookup block the reactor after all, this lets it go on after a while,
            // so the test fails instead of hanging.
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(8)) { gate.signal() }
            let pool = await makePool(on: reactor)
            await reactor.submit {
                pool.value.resolver = { host, port in
                    calls.record(reactor.inReactor)
                    gate.wait()
                    return Result { () throws(SocketError) in try SocketAddress4or6.resolve(host: "127.0.0.1", port: port) }
                }
            }
            let first = startConnect(pool, on: reactor, host: "upstream.test", port: listener.port)
            let second = startConnect(pool, on: reactor, host: "upstream.test", port: listener.port)
            try await poll("the resolver is asked") { !calls.onReactor.get().isEmpty }
            // While the lookup is stuck, the reactor still runs its tasks.
            let start = ContinuousClock.now
            await reactor.submit {}
            #expect(ContinuousClock.now - start < .seconds(4), "the reactor waited for the lookup")
            #expect(first.get() == nil && second.get() == nil)
            gate.signal()
            try await poll("both connects finish") { first.get() != nil && second.get() != nil }
            #expect(first.get() == "connected")
            #expect(second.get() == "connected")
            #expect(calls.onReactor.get() == [false], "one lookup, off the reactor")
            // Within the cache's lifetime the name needs no second lookup.
            let third = startConnect(pool, on: reactor, host: "upstream.test", port: listener.port)
            try await poll("the third connect finishes") { third.get() != nil }
            #expect(third.get() == "connected")
            #expect(calls.onReactor.get().count == 1)
        }
    }

    @Test func ipLiteralsConnectWithoutTheResolver() async throws {
        try await withReactor { reactor in
            let v4 = try Sockets.listen(host: "127.0.0.1", port: 0)
            defer { close(v4.fd) }
            let v6 = try Sockets.listen(host: "::1", port: 0)
            defer { close(v6.fd) }
            let calls = Calls()
            let pool = await makePool(on: reactor)
            await reactor.submit { pool.value.resolver = { _, _ in calls.record(true); return .success([]) } }
            let a = startConnect(pool, on: reactor, host: "127.0.0.1", port: v4.port)
            let b = startConnect(pool, on: reactor, host: "::1", port: v6.port)
            try await poll("both connects finish") { a.get() != nil && b.get() != nil }
            #expect(a.get() == "connected")
            #expect(b.get() == "connected")
            #expect(calls.onReactor.get().isEmpty, "an IP literal went through the resolver")
        }
    }

    @Test func aLookupSlowerThanTheConnectTimeoutTimesOut() async throws {
        try await withReactor { reactor in
            let gate = DispatchSemaphore(value: 0)
            defer { gate.signal() }
            let pool = await makePool(on: reactor, connectTimeout: .milliseconds(100))
            await reactor.submit {
                pool.value.resolver = { _, port in
                    gate.wait()
                    return .failure(SocketError(operation: "resolve", code: 0, detail: "released"))
                }
            }
            let outcome = startConnect(pool, on: reactor, host: "slow.test", port: 9)
            try await poll("the connect gives up") { outcome.get() != nil }
            #expect(outcome.get() == "timed out")
        }
    }

    @Test func aFailedLookupFailsTheConnect() async throws {
        try await withReactor { reactor in
            let pool = await makePool(on: reactor)
            await reactor.submit {
                pool.value.resolver = { _, _ in .failure(SocketError(operation: "resolve nowhere.test", code: 0, detail: "no such host")) }
            }
            let outcome = startConnect(pool, on: reactor, host: "nowhere.test", port: 9)
            try await poll("the connect fails") { outcome.get() != nil }
            #expect(outcome.get() == "failed: resolve nowhere.test: no such host")
        }
    }

    @Test func numericHostsParseWithoutALookup() throws {
        let v4 = try #require(SocketAddress4or6(numericHost: "127.0.0.1", port: 8080))
        #expect(v4.family == AF_INET)
        #expect(v4.ipString == "127.0.0.1")
        #expect(v4.port == 8080)
        let v6 = try #require(SocketAddress4or6(numericHost: "::1", port: 443))
        #expect(v6.family == AF_INET6)
        #expect(v6.ipString == "::1")
        #expect(v6.port == 443)
        for name in ["localhost", "upstream.test", "256.0.0.1", "1.2.3", "fe80::1%lo", "", "[::1]"] {
            #expect(SocketAddress4or6(numericHost: name, port: 80) == nil, "\(name)")
        }
    }
}
