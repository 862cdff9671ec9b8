/// Request rate and latency of one route over a window, from two readings of cumulative
/// counters (what `/_tapper/traffic` reports). Pure: the gateway's per-I/O-thread counters are
/// summed into ``Totals`` and two of those, some seconds apart, give the window.
public enum TrafficWindow {
    /// Latency buckets: bucket `i` holds durations in [2^i, 2^(i+1)) µs (bucket 0 also below 1 µs),
    /// the last one everything from 2^(count-1) µs (about 34 s) up.
    public static let bucketCount = 26

    /// The bucket of a duration.
    @inline(__always)
    public static func bucket(nanoseconds: Int64) -> Int {
        let micros = UInt64(max(0, nanoseconds / 1000))
        if micros == 0 { return 0 }
        return min(bucketCount - 1, 63 - micros.leadingZeroBitCount)
    }

    /// Cumulative counters of one route (summed over the I/O threads).
    public struct Totals: Hashable, Sendable {
        public var requests: UInt64 = 0
        /// Responses with a 5xx status.
        public var errors: UInt64 = 0
        public var nanoseconds: UInt64 = 0
        public var buckets = [UInt64](repeating: 0, count: TrafficWindow.bucketCount)

        public init() {}

        public mutating func add(_ other: Totals) {
            requests &+= other.requests
            errors &+= other.errors
            nanoseconds &+= other.nanoseconds
            for i in buckets.indices { buckets[i] &+= other.buckets[i] }
        }

        /// `self - earlier` (counters only grow; a reset reads as zero).
        public func since(_ earlier: Totals) -> Totals {
            var d = Totals()
            d.requests = requests >= earlier.requests ? requests - earlier.requests : 0
            d.errors = errors >= earlier.errors ? errors - earlier.errors : 0
            d.nanoseconds = nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0
            for i in buckets.indices { d.buckets[i] = buckets[i] >= earlier.buckets[i] ? buckets[i] - earlier.buckets[i] : 0 }
            return d
        }
    }

    public struct Rates: Hashable, Sendable {
        public var requestsPerSecond: Double
        public var errorsPerSecond: Double
        /// nil when the window saw no request.
        public var meanMilliseconds: Double?
        public var p50Milliseconds: Double?
        public var p99Milliseconds: Double?
    }

    /// The rates of the `delta` counted over `seconds`.
    public static func rates(_ delta: Totals, seconds: Double) -> Rates {
        let s = max(seconds, 0.001)
        return Rates(
            requestsPerSecond: round3(Double(delta.requests) / s), errorsPerSecond: round3(Double(delta.errors) / s),
            meanMilliseconds: delta.requests == 0 ? nil : round3(Double(delta.nanoseconds) / Double(delta.requests) / 1e6),
            p50Milliseconds: percentile(0.5, delta.buckets), p99Milliseconds: percentile(0.99, delta.buckets)
        )
    }

    /// The `q` quantile in milliseconds: the upper edge of the bucket where the count reaches it
    /// (an upper bound, within a factor of two). nil for no observations.
    public static func percentile(_ q: Double, _ buckets: [UInt64]) -> Double? {
        let total = buckets.reduce(0, &+)
        guard total > 0 else { return nil }
        let rank = UInt64((Double(total) * q).rounded(.up))
        var seen: UInt64 = 0
        for (i, n) in buckets.enumerated() {
            seen &+= n
            if seen >= max(rank, 1) { return round3(Double(UInt64(1) << UInt64(i + 1)) / 1000) }
        }
        return round3(Double(UInt64(1) << UInt64(bucketCount)) / 1000)
    }

    static func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}
