import Foundation
import Testing
import TapperTesting

/// Two gateway processes sharing one rate limit through a real Redis or etcd: the budget is
/// theirs together, and while the store is down one fails closed (503) and the other open.
@Suite(.serialized) struct SharedRateLimitTests {
    /// The kinds to run: both wherever the servers are installed, and always under CI (where a
    /// missing server fails the test instead of skipping it).
    static let kinds = [StoreServer.Kind.redis, .etcd].filter(StoreServer.shouldRun)

    struct Gateway {
        let process: TapperProcess
        let url: String

        func status() async throws -> [String: Any] {
            let r = try await httpRequest(.GET, url + "/_tapper/status")
            #expect(r.status == 200)
            return try r.json()
        }

        /// Successful syncs with the store so far.
        func syncs() async throws -> Int {
            ((try await status()["gateway"] as? [String: Any])?["rate_limit_store"] as? [String: Any])?["syncs"] as? Int ?? -1
        }

        /// Waits until two more syncs have happened: everything counted before is in the store,
        /// and this gateway has read the totals back.
        func waitForSyncs() async throws {
            let first = try await syncs()
            try await poll("\(url) synced twice", timeout: .seconds(10), every: .milliseconds(10)) { try await syncs() >= first + 2 }
        }

        func get(_ client: String) async throws -> HTTPReply {
            try await httpRequest(.GET, url + "/users/1", headers: [("x-client", client)])
        }
    }

    func startGateway(store: String, failure: String) async throws -> Gateway {
        let p = try TapperProcess([
            "gateway", "serve", "--port", "0", "--registry", store, "--no-access-log", "--no-health-checks", "--rate-limit", "20/m",
            "--rate-limit-key", "header:x-client", "--rate-limit-store", "shared", "--rate-limit-sync", "0.05", "--rate-limit-failure", failure,
        ])
        let port = try await p.waitForListeningPort("gateway listening on http://")
        return Gateway(process: p, url: "http://127.0.0.1:\(port)")
    }

    @Test(arguments: kinds)
    func twoGatewaysShareOneBudgetAndFailOpenOrClosedWhileTheStoreIsDown(_ kind: StoreServer.Kind) async throws {
        let store = try await StoreServer(kind)
        defer { Task { await store.stop() } }
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let registry = try TapperProcess(["registry", "serve", "--port", "0", "--backend", store.url])
        defer { registry.signal(SIGKILL) }
        let registryURL = "http://127.0.0.1:\(try await registry.waitForListeningPort("registry listening on http://"))"
        let closed = try await startGateway(store: store.url, failure: "closed")
        defer { closed.process.signal(SIGKILL) }
        let open = try await startGateway(store: store.url, failure: "open")
        defer { open.process.signal(SIGKILL) }
        let reg = try await TapperProcess.run(["service", "register", "users", "--url", up.url, "--registry", registryURL, "--route", "GET /users/{id}"])
        #expect(reg.status == 0, "\(reg.stderr)")
        for g in [closed, open] {
            try await poll("\(g.url) routes /users") { try await g.get("warm-up").status == 200 }
        }

        // 10 through one gateway, then 1 through the other before it knows: 11 of 20 used.
        let client = UUID().uuidString
        for _ in 0..<10 { #expect(try await closed.get(client).status == 200) }
        try await closed.waitForSyncs()
        #expect(try await open.get(client).status == 200)
        try await open.waitForSyncs()
        // The second gateway admits what is left of the shared 20, then refuses.
        var admitted = 0
        var refusal: HTTPReply? = nil
        for _ in 0..<20 {
            let r = try await open.get(client)
            if r.status == 200 { admitted += 1 } else { refusal = r; break }
        }
        #expect(admitted == 9, "the second gateway admitted \(admitted) of the 9 left")
        #expect(refusal?.status == 429)
        #expect(refusal?.headers.first(name: "RateLimit-Policy") == "\"gateway\";q=20;w=60")
        try await open.waitForSyncs()
        try await closed.waitForSyncs()
        #expect(try await closed.get(client).status == 429, "the first gateway sees the other's requests")
        // Another key has its own budget.
        #expect(try await closed.get(UUID().uuidString).status == 200)

        // The store goes down: fail-closed answers 503, fail-open counts on its own.
        try await store.kill()
        try await poll("the fail-closed gateway answers 503", timeout: .seconds(15)) {
            let r = try await closed.get(UUID().uuidString)
            return r.status == 503 && r.text.contains("rate_limit_unavailable")
        }
        let status = try await closed.status()
        let limits = (status["gateway"] as? [String: Any])?["rate_limit_store"] as? [String: Any]
        #expect(limits?["reachable"] as? Bool == false && limits?["failure"] as? String == "closed", "\(String(describing: limits))")
        let lone = UUID().uuidString
        for _ in 0..<20 { #expect(try await open.get(lone).status == 200) }
        #expect(try await open.get(lone).status == 429, "fail-open still limits, per gateway")

        // It comes back: the closed gateway serves again without a restart.
        try await store.start()
        try await poll("the fail-closed gateway recovers", timeout: .seconds(20)) { try await closed.get(UUID().uuidString).status == 200 }
        await closed.process.stop()
        await open.process.stop()
        await registry.stop()
    }
}
