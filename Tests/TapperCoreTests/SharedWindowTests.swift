import Testing
import TapperCore

/// The shared limit's window arithmetic, with two gateways and the store played by the test.
@Suite struct SharedWindowTests {
    let limit = RateLimit(requests: 10, windowNanos: 60_000_000_000)
    let minute: UInt64 = 60_000_000_000
    /// 1,000 minutes after the epoch: window 1000 starts here.
    var start: UInt64 { 1000 * minute }

    @Test func aloneItAdmitsTheLimitPerWindowAndSaysWhenToRetry() {
        var w = SharedWindow(limit: limit, now: start)
        for i in 0..<10 {
            let d = w.take(limit, now: start + UInt64(i))
            #expect(d.allowed && d.remaining == 9 - i)
        }
        let refused = w.take(limit, now: start + 1_000_000_000)
        #expect(!refused.allowed && !refused.storeUnavailable)
        // Nothing fades before the window ends (no previous window): the rest of the minute.
        #expect(refused.retryAfterSeconds == 59)
        #expect(w.pending == 10)
    }

    @Test func twoGatewaysShareTheBudgetOnceTheyHaveSynced() {
        var a = SharedWindow(limit: limit, now: start)
        var b = SharedWindow(limit: limit, now: start)
        for _ in 0..<4 { #expect(a.take(limit, now: start + 1).allowed) }
        for _ in 0..<3 { #expect(b.take(limit, now: start + 2).allowed) }
        // The store adds up what each drained: 4 + 3.
        let (wa, da) = a.drain(limit, now: start + 3)
        let (wb, db) = b.drain(limit, now: start + 3)
        #expect(wa == 1000 && wb == 1000 && da == 4 && db == 3)
        a.synced(window: wa, total: 7)
        b.synced(window: wb, total: 7)
        // Three left between them: a takes two, b one, and then both refuse once synced again.
        #expect(a.take(limit, now: start + 4).allowed)
        #expect(a.take(limit, now: start + 4).allowed)
        #expect(b.take(limit, now: start + 4).allowed)
        let (_, da2) = a.drain(limit, now: start + 5)
        let (_, db2) = b.drain(limit, now: start + 5)
        a.synced(window: 1000, total: 7 + da2 + db2)
        b.synced(window: 1000, total: 7 + da2 + db2)
        #expect(!a.take(limit, now: start + 6).allowed)
        #expect(!b.take(limit, now: start + 6).allowed)
        // A total from a window that has passed does not lower the current one.
        a.synced(window: 999, total: 0)
        #expect(a.currentTotal == 10)
    }

    @Test func thePreviousWindowFadesOutAcrossTheNext() {
        var w = SharedWindow(limit: limit, now: start)
        for _ in 0..<10 { _ = w.take(limit, now: start) }
        let (_, d) = w.drain(limit, now: start + 1)
        w.synced(window: 1000, total: d)
        // A quarter into the next window, 10 × 0.75 = 7.5 of the budget is still used: 2 fit.
        let quarter = start + minute + minute / 4
        #expect(w.take(limit, now: quarter).allowed)
        #expect(w.take(limit, now: quarter).allowed)
        let refused = w.take(limit, now: quarter)
        #expect(!refused.allowed)
        #expect(w.previousTotal == 10)
        // 9.5 + 1 > 10 now; at 11.5 a request fits: 10 × (1 − f) + 2 + 1 ≤ 10 → f ≥ 0.3, 3 s on.
        #expect(refused.retryAfterSeconds == 3, "\(refused)")
        #expect(w.take(limit, now: start + minute + minute * 3 / 10 + 1).allowed)
        // Two windows later nothing is left of it.
        #expect(w.isIdle(limit, now: start + 3 * minute))
        #expect(!w.isIdle(limit, now: start + minute + 1))
    }

    @Test func countsNotYetSyncedWhenTheWindowEndsCountAsThePreviousWindow() {
        var w = SharedWindow(limit: limit, now: start)
        for _ in 0..<6 { _ = w.take(limit, now: start + 1) }
        // Never synced: the 6 move to "previous" at the roll, and are not sent for the new window.
        let (window, delta) = w.drain(limit, now: start + minute)
        #expect(window == 1001 && delta == 0)
        #expect(w.previousTotal == 6)
    }
}
