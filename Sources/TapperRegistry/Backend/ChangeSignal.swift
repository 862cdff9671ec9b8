import Synchronization

/// Lets tasks wait until a change index passes a value; the memory backend advances it after
/// each change. Waiting is cancellable, which is how blocking queries time out.
public final class ChangeSignal: Sendable {
    private struct Waiter {
        var after: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var index: UInt64
        var nextID = 0
        var waiters: [Int: Waiter] = [:]
        var closed = false
    }

    private let state: Mutex<State>

    public init(index: UInt64 = 0) {
        state = Mutex(State(index: index))
    }

    public var index: UInt64 { state.withLock { $0.index } }

    /// How many tasks are waiting now (tests use it to know a blocking query is parked).
    public var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Publishes a new index and wakes every waiter it satisfies: every waiter whose index is
    /// not the new one, including when the index moved backwards (a store that lost its data
    /// and republished from a lower index), so a blocking query re-reads instead of sleeping
    /// until the index climbs past the value it last saw.
    public func advance(to index: UInt64) {
        let woken = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.index = index
            let ready = s.waiters.filter { $0.value.after != index }
            for id in ready.keys { s.waiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
        for c in woken { c.resume(returning: true) }
    }

    /// Wakes everyone and makes future waits return false at once (shutdown).
    public func close() {
        let woken = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            s.closed = true
            defer { s.waiters.removeAll() }
            return s.waiters.values.map(\.continuation)
        }
        for c in woken { c.resume(returning: false) }
    }

    /// Waits until the index differs from `after` (it passed it, or went backwards, e.g. after a
    /// store reset, so the caller re-reads), or returns at once when it already does.
    /// - Returns: true when the index moved away from `after`; false on cancellation or close.
    public func wait(after: UInt64) async -> Bool {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate: Bool? = state.withLock { s in
                    if s.closed { return false }
                    if s.index != after { return true }
                    if Task.isCancelled { return false }
                    s.waiters[id] = Waiter(after: after, continuation: continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let c = state.withLock { $0.waiters.removeValue(forKey: id)?.continuation }
            c?.resume(returning: false)
        }
    }

    /// ``wait(after:)`` bounded by `timeout`. Returns true when a change arrived in time.
    public func wait(after: UInt64, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait(after: after) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
