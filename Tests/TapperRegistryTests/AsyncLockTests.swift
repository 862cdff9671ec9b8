import Testing
@testable import TapperRegistry
import TapperTesting

/// ``AsyncLock`` queues writers first come, first served, and a cancelled waiter leaves the
/// queue at once instead of holding up the writers behind it. No sleeps: the tests poll the
/// lock's queue with a deadline and wait on the tasks themselves.
@Suite struct AsyncLockTests {
    @Test func aCancelledWaiterLeavesAtOnceAndDoesNotHoldUpOthers() async throws {
        let lock = AsyncLock()
        try await lock.lock()  // held by the test
        let cancelled = Task { try await lock.lock() }
        try await poll("the first waiter is queued") { lock.waiterCount == 1 }
        let next = Task {
            try await lock.lock()
            lock.unlock()
            return "got it"
        }
        try await poll("the second waiter is queued") { lock.waiterCount == 2 }

        cancelled.cancel()
        // The cancelled waiter returns while the lock is still held...
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(lock.waiterCount == 1)
        // ...and unlocking hands the lock to the live waiter, not to the one that left.
        lock.unlock()
        #expect(try await next.value == "got it")
        // Nothing is left holding it.
        try await lock.lock()
        lock.unlock()
        #expect(lock.waiterCount == 0)
    }

    @Test func aTaskCancelledBeforeItAsksNeverTakesTheLock() async throws {
        let lock = AsyncLock()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await lock.lock()
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        // The lock is still free.
        try await lock.lock()
        lock.unlock()
    }

    @Test func waitersAreServedInArrivalOrder() async throws {
        let lock = AsyncLock()
        try await lock.lock()
        let order = OrderLog()
        var tasks: [Task<Void, any Error>] = []
        for i in 0..<5 {
            tasks.append(Task {
                try await lock.withLock { await order.append(i) }
            })
            try await poll("waiter \(i) is queued") { lock.waiterCount == i + 1 }
        }
        lock.unlock()
        for t in tasks { try await t.value }
        #expect(await order.items == [0, 1, 2, 3, 4])
    }

    @Test func manyWaitersCancelledAtRandomNeverWedgeTheLock() async throws {
        let lock = AsyncLock()
        try await lock.lock()
        var tasks: [Task<Bool, Never>] = []
        for _ in 0..<50 {
            tasks.append(Task {
                do {
                    try await lock.withLock {}
                    return true
                } catch {
                    return false
                }
            })
        }
        try await poll("every waiter is queued") { lock.waiterCount == 50 }
        for (i, t) in tasks.enumerated() where i % 2 == 0 { t.cancel() }
        try await poll("the cancelled waiters left") { lock.waiterCount == 25 }
        lock.unlock()
        var served = 0
        for t in tasks where await t.value { served += 1 }
        #expect(served == 25)
        #expect(lock.waiterCount == 0)
    }
}

actor OrderLog {
    var items: [Int] = []
    func append(_ i: Int) { items.append(i) }
}
