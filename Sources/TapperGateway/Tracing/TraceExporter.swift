import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import TapperClient
import TapperCore

/// Sends the gateway's spans to an OTLP/HTTP receiver (`--otlp-endpoint`) as a `Service`:
/// batches of up to 512 spans, at least every second, `POST <endpoint>/v1/traces` as OTLP
/// protobuf (`application/x-protobuf`, OTLP/HTTP's default encoding). The spans come encoded
/// (``SpanChunk``): a request is a prefix and the chunks' bytes.
///
/// The I/O threads hand over spans in chunks (``SpanBuffer``) under a short lock and never wait:
/// the queue is bounded (``SpanBatcher``) and what does not fit is dropped and counted. The
/// exporter wakes when a batch is full or when the oldest queued span has waited the delay (it
/// sleeps until then, and not at all while the queue is empty), so an idle gateway neither
/// posts nor wakes, and a failed post is counted, not retried (telemetry must not pile up behind
/// a dead collector).
public final class TraceExporter: Service, Sendable {
    public struct Settings: Sendable {
        /// The receiver's base URL (`http://collector:4318`); `/v1/traces` is appended unless
        /// the URL already ends with it.
        public var endpoint: String
        /// The resource's `service.name`.
        public var serviceName = "tapper-gateway"
        /// Share of new traces sampled (parent-based: a caller's decision wins).
        public var sampleRate = 1.0
        public var batching = SpanBatcher<SpanChunk>.Settings()
        /// How long one export request may take.
        public var timeout: Duration = .seconds(10)

        public init(endpoint: String) {
            self.endpoint = endpoint
        }

        /// The URL spans are posted to.
        public var tracesURL: String {
            var base = endpoint
            while base.hasSuffix("/") { base.removeLast() }
            return base.hasSuffix("/v1/traces") ? base : base + "/v1/traces"
        }
    }

    /// Export counts since the start.
    public struct Counters: Sendable, Equatable, Codable {
        /// Spans the receiver accepted (2xx).
        public var exported: Int
        /// Spans dropped because the queue was full.
        public var dropped: Int
        /// Spans whose export request failed (connection error or non-2xx answer).
        public var failed: Int
    }

    public let settings: Settings
    let sampler: TraceSampler
    private let url: String
    private let encoder: OTLPProtobufEncoder
    private let http: HTTPClient
    /// Posts to a plain-http receiver (nil for https: AsyncHTTPClient does).
    private let poster: SpanPoster?
    /// Exports through ``poster`` from its loop (nil for https).
    private let driver: Driver?
    private let logger: Logger
    /// The queue and the counts, shared with the ``Driver``.
    private let state: State

    final class State: Sendable {
        let batcher: Mutex<SpanBatcher<SpanChunk>>
        let counts = Mutex((exported: 0, failed: 0))
        let logger: Logger
        let url: String

        init(batching: SpanBatcher<SpanChunk>.Settings, logger: Logger, url: String) {
            batcher = Mutex(SpanBatcher(settings: batching))
            self.logger = logger
            self.url = url
        }

        /// Counts (and logs) the outcome of an export request of `count` spans: a status
        /// (2xx: exported) or the error it failed with.
        func record(_ count: Int, _ result: Result<Int, any Error>) {
            switch result {
            case .success(let status) where (200..<300).contains(status):
                counts.withLock { $0.exported += count }
            case .success(let status):
                counts.withLock { $0.failed += count }
                logger.warning("OTLP receiver refused spans", metadata: ["url": "\(url)", "status": "\(status)", "spans": "\(count)"])
            case .failure(let error):
                counts.withLock { $0.failed += count }
                logger.warning("cannot export spans", metadata: ["url": "\(url)", "error": "\(error)", "spans": "\(count)"])
            }
        }
    }
    private let wake: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation
    /// Told when spans arrive in an empty queue: the delay timer has a deadline again.
    private let armed: AsyncStream<Void>
    private let arm: AsyncStream<Void>.Continuation
    /// The shortest sleep of the delay timer (a batch due now waits at most this long for it).
    private static let minimumSleepNanos: UInt64 = 10_000_000

    /// - Parameters:
    ///   - settings: where and how to export.
    ///   - version: the instrumentation scope's version (Tapper's).
    public init(settings: Settings, version: String, logger: Logger, http: HTTPClient = TapperHTTPClient.shared) {
        self.settings = settings
        sampler = TraceSampler(rate: settings.sampleRate)
        url = settings.tracesURL
        encoder = OTLPProtobufEncoder(serviceName: settings.serviceName, scopeVersion: version)
        self.http = http
        let poster = SpanPoster.Endpoint(url: url).map { SpanPoster(endpoint: $0, contentType: Self.contentType, userAgent: "tapper-gateway") }
        self.poster = poster
        self.logger = logger
        let state = State(batching: settings.batching, logger: logger, url: url)
        self.state = state
        if let poster {
            driver = Driver(poster: poster, state: state, encoder: encoder, timeout: settings.timeout)
        } else {
            driver = nil
        }
        (wake, wakeUp) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        (armed, arm) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var counters: Counters {
        let c = state.counts.withLock { $0 }
        return Counters(exported: c.exported, dropped: Int(state.batcher.withLock { $0.dropped }), failed: c.failed)
    }

    /// Takes finished spans from an I/O thread (never blocks beyond a short lock).
    func enqueue(_ spans: SpanChunk) {
        let now = NIODeadline.now().uptimeNanoseconds
        let (offered, wasEmpty) = state.batcher.withLock { b in
            let empty = b.count == 0
            return (b.offer(spans, now: now), empty)
        }
        if let driver {
            // A full batch, or a delay to start: the poster's loop sees to it.
            if offered.batchReady || (wasEmpty && offered.accepted > 0) { driver.wake() }
            return
        }
        if offered.batchReady { wakeUp.yield() }
        if wasEmpty && offered.accepted > 0 { arm.yield() }
    }

    public func run() async throws {
        if let driver {
            // Batches, delays and posts all happen on the poster's loop; this task only waits
            // for the shutdown, then has the rest sent.
            driver.start()
            try? await gracefulShutdown()
            await driver.flush()
            await poster?.stop()
            return
        }
        await withDiscardingTaskGroup { group in
            let wakeUp = self.wakeUp
            let armed = self.armed
            group.addTask {
                // The delay timer: sleeps until the oldest queued span's batch is due, or
                // (queue empty) until spans arrive.
                var arrivals = armed.makeAsyncIterator()
                while !Task.isCancelled {
                    guard let deadline = self.state.batcher.withLock({ $0.nextDeadline }) else {
                        guard await arrivals.next() != nil else { return }
                        continue
                    }
                    let now = NIODeadline.now().uptimeNanoseconds
                    let wait = deadline > now ? deadline - now : 0
                    try? await Task.sleep(for: .nanoseconds(Int64(max(wait, Self.minimumSleepNanos))))
                    wakeUp.yield()
                }
            }
            await cancelWhenGracefulShutdown {
                for await _ in self.wake {
                    await self.exportDue(flushing: false)
                }
            }
            // Shutting down: the server stopped first (the group stops services in reverse
            // order), so what its loops handed over is here; send it.
            await exportDue(flushing: true)
            arm.finish()
            group.cancelAll()
        }
    }

    /// Posts every batch that is due (all of them when `flushing`).
    func exportDue(flushing: Bool) async {
        while true {
            let now = NIODeadline.now().uptimeNanoseconds
            guard let batch = state.batcher.withLock({ $0.takeBatch(now: now, flushing: flushing) }) else { return }
            await post(batch)
        }
    }

    static let contentType = "application/x-protobuf"

    private func post(_ chunks: [SpanChunk]) async {
        let count = chunks.reduce(0) { $0 + $1.count }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: Self.contentType)
        request.headers.add(name: "User-Agent", value: "tapper-gateway")
        request.body = .bytes(encoder.encode(chunks))
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(settings.timeout.nanoseconds))
            _ = try? await response.body.collect(upTo: 64 * 1024)
            state.record(count, .success(Int(response.status.code)))
        } catch {
            state.record(count, .failure(error))
        }
    }

    /// Exports through a ``SpanPoster`` from its loop, without Swift concurrency: woken there
    /// by the I/O threads (a full batch, or spans in an empty queue), it takes what is due,
    /// posts it, and when nothing is due arms a timer for when the oldest span's batch will be
    /// (through Swift concurrency every batch cost about a hundred instructions per span in
    /// task switches, continuations and sleeps).
    final class Driver: @unchecked Sendable {
        private let poster: SpanPoster
        private let state: State
        private let encoder: OTLPProtobufEncoder
        private let timeout: Duration
        // On the poster's loop only:
        private var inFlight = false
        /// When the armed timer fires (nil: none armed).
        private var armedFor: UInt64?
        private var flushing = false
        private var flushed: CheckedContinuation<Void, Never>?

        init(poster: SpanPoster, state: State, encoder: OTLPProtobufEncoder, timeout: Duration) {
            self.poster = poster
            self.state = state
            self.encoder = encoder
            self.timeout = timeout
        }

        /// Set once the exporter runs as a service: before that spans only queue (nothing is
        /// posted by an exporter that was never started).
        private let running = Atomic<Bool>(false)

        /// From any thread.
        func wake() {
            guard running.load(ordering: .acquiring) else { return }
            poster.reactor?.execute { self.pump() }
        }

        /// The exporter's service started: what queued before is due as usual.
        func start() {
            running.store(true, ordering: .releasing)
            wake()
        }

        /// Sends everything queued, then returns (shutdown).
        func flush() async {
            guard let reactor = poster.runningReactor else { return }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                reactor.execute {
                    self.flushing = true
                    self.flushed = c
                    self.pump()
                }
            }
        }

        private func pump() {
            guard !inFlight, let reactor = poster.runningReactor else { return }
            let now = NIODeadline.now().uptimeNanoseconds
            let flushing = self.flushing
            if let batch = state.batcher.withLock({ $0.takeBatch(now: now, flushing: flushing) }) {
                inFlight = true
                let count = batch.reduce(0) { $0 + $1.count }
                poster.send(encoder.request(batch), timeout: timeout) { result in
                    self.inFlight = false
                    self.state.record(count, result.mapError { $0 })
                    self.pump()
                }
                return
            }
            if flushing {
                flushed?.resume()
                flushed = nil
                return
            }
            guard let deadline = state.batcher.withLock({ $0.nextDeadline }) else { return }
            if let armed = armedFor, armed <= deadline { return }
            armedFor = deadline
            reactor.schedule(at: .uptimeNanoseconds(deadline)) {
                if self.armedFor == deadline { self.armedFor = nil }
                self.pump()
            }
        }
    }
}
