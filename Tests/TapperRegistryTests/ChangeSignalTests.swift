import Testing
import TapperRegistry
import TapperTesting

@Suite struct ChangeSignalTests {
    /// Waits on `signal` after `index` in a task and returns that task once the waiter is parked.
    private func parkedWaiter(_ signal: ChangeSignal, after index: UInt64) async throws -> Task<Bool, Never> {
        let waiter = Task { await signal.wait(after: index, timeout: .seconds(10)) }
        try await poll("the waiter is parked") { signal.waiterCount == 1 }
        return waiter
    }

    @Test func aParkedWaiterWakesWhenTheIndexPassesIt() async throws {
        let signal = ChangeSignal(index: 10)
        let waiter = try await parkedWaiter(signal, after: 10)
        signal.advance(to: 11)
        #expect(await waiter.value)
        #expect(signal.waiterCount == 0)
    }

    /// A store that lost its data republishes from a lower index: a blocking query parked on the
    /// old index must re-read now, not sleep until the index climbs past where it was.
    @Test func aParkedWaiterWakesWhenTheIndexMovesBackwards() async throws {
        let signal = ChangeSignal(index: 10)
        let waiter = try await parkedWaiter(signal, after: 10)
        let start = ContinuousClock.now
        signal.advance(to: 3)
        #expect(await waiter.value, "the waiter timed out instead of waking on the lower index")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(signal.waiterCount == 0)
        #expect(signal.index == 3)
    }

    @Test func republishingTheSameIndexWakesNobody() async throws {
        let signal = ChangeSignal(index: 10)
        let waiter = try await parkedWaiter(signal, after: 10)
        signal.advance(to: 10)
        #expect(signal.waiterCount == 1)
        signal.close()
        #expect(await waiter.value == false)
    }

    @Test func aWaitAfterAnIndexAheadOfTheCurrentOneReturnsAtOnce() async {
        let signal = ChangeSignal(index: 3)
        #expect(await signal.wait(after: 10))
    }
}
