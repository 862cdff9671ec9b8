/// The exporter's queue policy, pure: a bounded queue of finished spans that hands out batches
/// when one is full or the oldest span has waited long enough (OpenTelemetry's batch span
/// processor: max queue size, max export batch size, schedule delay).
///
/// Producers never wait: what does not fit is dropped and counted. Time is passed in (uptime
/// nanoseconds), so tests drive it directly.
public struct SpanBatcher<Chunk: SpanBatchChunk> {
    public struct Settings: Sendable, Equatable {
        /// Spans held at most; more are dropped.
        public var maxQueue: Int
        /// Spans per export request at most.
        public var maxBatch: Int
        /// How long a span may wait for its batch to fill, in nanoseconds.
        public var delayNanos: UInt64

        public init(maxQueue: Int = 8192, maxBatch: Int = 512, delayNanos: UInt64 = 1_000_000_000) {
            self.maxQueue = max(1, maxQueue)
            self.maxBatch = max(1, min(maxBatch, self.maxQueue))
            self.delayNanos = delayNanos
        }
    }

    /// What ``offer(_:now:)`` did.
    public struct Offered: Equatable, Sendable {
        public var accepted: Int
        public var dropped: Int
        /// The queue just reached a full batch: wake the exporter instead of letting it wait
        /// for the delay.
        public var batchReady: Bool

        public init(accepted: Int, dropped: Int, batchReady: Bool) {
            self.accepted = accepted
            self.dropped = dropped
            self.batchReady = batchReady
        }
    }

    public let settings: Settings
    /// The queue, as the chunks the producers handed over (no span is copied on the way in,
    /// and a batch is a few chunks, so none is copied on the way out either).
    private var chunks: [Chunk] = []
    /// Spans queued.
    public private(set) var count = 0
    /// When the oldest span now queued arrived.
    private var oldestSince: UInt64 = 0
    /// Spans dropped because the queue was full, since the start.
    public private(set) var dropped: UInt64 = 0

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Queues the spans of `items` (as many as fit).
    public mutating func offer(_ items: Chunk, now: UInt64) -> Offered {
        let before = count
        if before == 0 && !items.isEmpty { oldestSince = now }
        let taken = min(settings.maxQueue - before, items.count)
        if taken == items.count {
            if taken > 0 { chunks.append(items) }
        } else if taken > 0 {
            chunks.append(items.split(at: taken).0)
        }
        count += taken
        let lost = items.count - taken
        dropped &+= UInt64(lost)
        return Offered(accepted: taken, dropped: lost, batchReady: before < settings.maxBatch && count >= settings.maxBatch)
    }

    /// The next batch to export, if one is due: a full batch at once, a partial one when its
    /// oldest span has waited the delay, or whatever is queued when `flushing` (shutdown).
    /// The batch comes as chunks (in order), `maxBatch` spans at most in all.
    public mutating func takeBatch(now: UInt64, flushing: Bool = false) -> [Chunk]? {
        guard count > 0 else { return nil }
        guard count >= settings.maxBatch || flushing || now &- oldestSince >= settings.delayNanos else { return nil }
        var batch: [Chunk] = []
        var n = 0
        var whole = 0
        while n < settings.maxBatch, whole < chunks.count {
            let chunk = chunks[whole]
            let room = settings.maxBatch - n
            if chunk.count <= room {
                batch.append(chunk)
                n += chunk.count
                whole += 1
            } else {
                // A chunk that does not fit waits for the next batch (a batch of whole chunks
                // copies no span), unless the batch would otherwise be empty: then it is split.
                if n == 0 {
                    let (first, rest) = chunk.split(at: room)
                    batch.append(first)
                    chunks[whole] = rest
                    n += room
                }
                break
            }
        }
        chunks.removeFirst(whole)
        count -= n
        // What stays behind goes out within one delay from now (or sooner, as a full batch).
        if count > 0 { oldestSince = now }
        return batch
    }

    /// When a partial batch becomes due (nil: the queue is empty).
    public var nextDeadline: UInt64? {
        count == 0 ? nil : oldestSince &+ settings.delayNanos
    }
}

extension SpanBatcher: Sendable where Chunk: Sendable {}

/// What the batcher queues: spans handed over together.
public protocol SpanBatchChunk {
    /// Spans in it.
    var count: Int { get }
    var isEmpty: Bool { get }
    /// The first `n` spans and the rest.
    func split(at n: Int) -> (Self, Self)
}

extension Array: SpanBatchChunk {
    public func split(at n: Int) -> (Array, Array) { (Array(prefix(n)), Array(dropFirst(n))) }
}
