import Atomics
import NIOConcurrencyHelpers
import Prometheus
import TapperCore

/// A Prometheus histogram family labelled by service (`tapper_upstream_duration_seconds`) that the
/// I/O threads record to without a lock.
///
/// Each I/O thread gets its own ``Shard`` per service and is the only writer of it: recording is
/// a relaxed load and store per field, no lock and no read-modify-write instruction. The metrics
/// endpoint sums the shards of a service. (swift-prometheus's `Histogram` takes a lock and
/// compares every bucket's `Duration` on each observation: about 680 of the ~25k instructions a
/// proxied request cost in callgrind. Counters and gauges stay on swift-prometheus.)
final class LatencyHistograms: Sendable {
    let name: String
    /// Bucket upper bounds in nanoseconds, ascending (the `+Inf` bucket is implicit).
    let bounds: [Int64]
    private let shards = NIOLockedValueBox<[(service: String, shard: Shard)]>([])

    init(name: String, bounds: [Duration]) {
        self.name = name
        self.bounds = bounds.map { $0.nanoseconds }.sorted()
    }

    /// One writer's counts for one service.
    final class Shard: Sendable {
        let bounds: [Int64]
        /// Observations per bucket (not cumulative); the last one is above every bound.
        let counts: [ManagedAtomic<Int>]
        let sumNanoseconds = ManagedAtomic<Int64>(0)

        init(bounds: [Int64]) {
            self.bounds = bounds
            counts = (0...bounds.count).map { _ in ManagedAtomic(0) }
        }

        /// Records one observation. Only the shard's own thread may call this.
        @inline(__always)
        func record(nanoseconds: Int64) {
            var i = 0
            while i < bounds.count && nanoseconds > bounds[i] { i += 1 }
            let bucket = counts[i]
            bucket.store(bucket.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
            sumNanoseconds.store(sumNanoseconds.load(ordering: .relaxed) &+ max(0, nanoseconds), ordering: .relaxed)
        }
    }

    /// A new shard for `service`, for one writer (an I/O thread keeps it).
    func makeShard(service: String) -> Shard {
        let shard = Shard(bounds: bounds)
        shards.withLockedValue { $0.append((service, shard)) }
        return shard
    }

    /// The family in the Prometheus text format, services in sorted order.
    func emit(into out: inout String) {
        let all = shards.withLockedValue { $0 }
        guard !all.isEmpty else { return }
        var totals: [String: (counts: [Int], sum: Int64)] = [:]
        for (service, shard) in all {
            var entry = totals[service] ?? (Array(repeating: 0, count: bounds.count + 1), 0)
            for i in entry.counts.indices { entry.counts[i] += shard.counts[i].load(ordering: .relaxed) }
            entry.sum += shard.sumNanoseconds.load(ordering: .relaxed)
            totals[service] = entry
        }
        out += "# TYPE \(name) histogram\n"
        for service in totals.keys.sorted() {
            let (counts, sum) = totals[service]!
            let label = #"service=""# + Self.escaped(service) + #"""#
            var cumulative = 0
            for (i, bound) in bounds.enumerated() {
                cumulative += counts[i]
                out += "\(name)_bucket{\(label),le=\"\(Duration.nanoseconds(bound).bucketRepresentation)\"} \(cumulative)\n"
            }
            cumulative += counts[bounds.count]
            out += "\(name)_bucket{\(label),le=\"+Inf\"} \(cumulative)\n"
            out += "\(name)_sum{\(label)} \(Duration.nanoseconds(sum).bucketRepresentation)\n"
            out += "\(name)_count{\(label)} \(cumulative)\n"
        }
    }

    /// A label value escaped as the exposition format asks (backslash, quote, newline).
    static func escaped(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
