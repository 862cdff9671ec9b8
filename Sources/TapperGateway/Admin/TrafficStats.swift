import Atomics
import Synchronization
import TapperCore

/// Per-route request counts, 5xx counts and latency histograms for `/_tapper/traffic`, plus the
/// last gateway 5xx answers.
///
/// The data path writes to ``Slot``s: one per route (service, method, template) per I/O thread,
/// so every counter has a single writer and a request costs a few relaxed atomic additions, no
/// lock and no hashing (the loop caches the slot with its metric handles). Readers sum the slots
/// and keep a few earlier sums to turn counts into rates over the last seconds.
public final class TrafficStats: Sendable {
    /// One route's counters on one I/O thread.
    final class Slot: Sendable {
        let service: String
        let method: String
        let route: String
        let requests = ManagedAtomic<UInt64>(0)
        let errors = ManagedAtomic<UInt64>(0)
        let nanoseconds = ManagedAtomic<UInt64>(0)
        let buckets: [ManagedAtomic<UInt64>] = (0..<TrafficWindow.bucketCount).map { _ in ManagedAtomic<UInt64>(0) }

        init(service: String, method: String, route: String) {
            self.service = service
            self.method = method
            self.route = route
        }

        @inline(__always)
        func record(nanoseconds nanos: Int64, status: Int) {
            requests.wrappingIncrement(ordering: .relaxed)
            if status >= 500 { errors.wrappingIncrement(ordering: .relaxed) }
            nanoseconds.wrappingIncrement(by: UInt64(max(0, nanos)), ordering: .relaxed)
            buckets[TrafficWindow.bucket(nanoseconds: nanos)].wrappingIncrement(ordering: .relaxed)
        }

        var totals: TrafficWindow.Totals {
            var t = TrafficWindow.Totals()
            t.requests = requests.load(ordering: .relaxed)
            t.errors = errors.load(ordering: .relaxed)
            t.nanoseconds = nanoseconds.load(ordering: .relaxed)
            for i in buckets.indices { t.buckets[i] = buckets[i].load(ordering: .relaxed) }
            return t
        }
    }

    /// A 5xx the gateway sent to a client (its own or an instance's).
    public struct RecentError: Sendable {
        public var at: ContinuousClock.Instant
        public var method: String
        public var path: String
        public var status: Int
        public var service: String
        public var instance: String?
        public var requestID: String
    }

    public struct RouteKey: Hashable, Sendable {
        public var service: String
        public var method: String
        public var route: String
    }

    private let slots = Mutex<[Slot]>([])
    private let errors = Mutex<[RecentError]>([])
    private let samples = Mutex<[(at: ContinuousClock.Instant, totals: [RouteKey: TrafficWindow.Totals])]>([])
    /// How many recent 5xx are kept.
    static let errorCapacity = 50
    /// Rates are over about this long (the oldest reading at most this old).
    static let window: Duration = .seconds(10)

    public init() {}

    /// A new slot for one I/O thread (called once per route and thread, not per request).
    func makeSlot(service: String, method: String, route: String) -> Slot {
        let slot = Slot(service: service, method: method, route: route)
        slots.withLock { $0.append(slot) }
        return slot
    }

    /// Remembers a 5xx answer (rare: takes a lock, never on a 2xx-4xx request).
    func recordError(_ error: RecentError) {
        errors.withLock { list in
            list.append(error)
            if list.count > Self.errorCapacity { list.removeFirst(list.count - Self.errorCapacity) }
        }
    }

    /// The recent 5xx answers, newest first.
    public var recentErrors: [RecentError] { errors.withLock { Array($0.reversed()) } }

    /// Every route's totals since the gateway started.
    public func totals() -> [RouteKey: TrafficWindow.Totals] {
        var out: [RouteKey: TrafficWindow.Totals] = [:]
        for slot in slots.withLock({ $0 }) {
            out[RouteKey(service: slot.service, method: slot.method, route: slot.route), default: TrafficWindow.Totals()].add(slot.totals)
        }
        return out
    }

    /// Totals now, and the reading to compare them with: the oldest kept one within ``window``
    /// (readings are kept at most one a second). nil the first time.
    public func reading(now: ContinuousClock.Instant = .now) -> (totals: [RouteKey: TrafficWindow.Totals], earlier: (at: ContinuousClock.Instant, totals: [RouteKey: TrafficWindow.Totals])?) {
        let current = totals()
        return samples.withLock { list in
            list.removeAll { now - $0.at > Self.window }
            let earlier = list.first
            if list.last.map({ now - $0.at >= .seconds(1) }) ?? true { list.append((now, current)) }
            return (current, earlier)
        }
    }
}
