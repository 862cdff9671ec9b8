import Synchronization

/// A first-come, first-served lock for async code: ``StoreBackend`` takes it around each
/// registration so writers in one process queue up instead of racing each other on the store's
/// write guard (racing only remains between processes).
///
/// Waiting honours task cancellation: a cancelled waiter leaves the queue at once with a
/// `CancellationError`, so a request whose client went away (or a shutdown) never holds up the
/// writers queued behind it. The holder hands the lock straight to the next live waiter.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var nextID: UInt64 = 0
        /// Waiters in arrival order.
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    private let state = Mutex(State())

    init() {}

    /// Waiters currently queued (for tests).
    var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Takes the lock, waiting behind earlier callers.
    /// - Throws: `CancellationError` when the task is cancelled before it gets the lock.
    func lock() async throws {
        try Task.checkCancellation()
        let id = state.withLock { s -> UInt64 in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case acquired, queued, cancelled }
                // Checked under the mutex: if the cancellation handler ran before this point, the
                // task is already marked cancelled; if it runs after, it finds the waiter queued.
                let outcome = state.withLock { s -> Outcome in
                    if Task.isCancelled { return .cancelled }
                    if !s.locked {
                        s.locked = true
                        return .acquired
                    }
                    s.waiters.append((id, continuation))
                    return .queued
                }
                switch outcome {
                case .acquired: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .queued: break
                }
            }
        } onCancel: {
            let removed = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                guard let i = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: i).continuation
            }
            removed?.resume(throwing: CancellationError())
        }
    }

    /// Releases the lock, handing it to the first waiter if there is one.
    func unlock() {
        let next = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }

    /// Runs `body` holding the lock.
    /// - Throws: `CancellationError` when cancelled while waiting, or what `body` throws.
    func withLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await lock()
        defer { unlock() }
        return try await body()
    }
}
