/// How a service's traffic is shared between its versions: canary releases and blue/green moves.
///
/// Each registration may carry a `traffic_weight`, the percentage of the service's requests its
/// version should get. The rule, for the versions that have a routable instance:
/// - versions with a weight get that percentage;
/// - versions without one share what is left (100 minus the weights) by instance count;
/// - when the weights add up to 100 or more, or every version has one, the weights are
///   scaled to 100 and unweighted versions get nothing.
///
/// So `1.0.0` (no weight, 3 instances) beside `2.0.0` (weight 10) sends 90% to 1.0.0 and 10% to
/// 2.0.0, whatever the instance counts. With no weight on any present version the split is the
/// plain instance-count one and ``compute(versions:weights:)`` returns nil: the balancer sees
/// every instance, as without versions.
public struct VersionSplit: Sendable, Hashable {
    public struct Share: Sendable, Hashable, Codable {
        public var version: String
        /// The share of requests, 0…100.
        public var percent: Double
        /// How many of the given instances run this version.
        public var instances: Int
        /// The share came from a `traffic_weight` (not from the remainder).
        public var weighted: Bool

        public init(version: String, percent: Double, instances: Int, weighted: Bool) {
            self.version = version
            self.percent = (percent * 100).rounded() / 100
            self.instances = instances
            self.weighted = weighted
        }
    }

    /// One entry per version present, sorted by version.
    public let shares: [Share]
    /// The percentages as integer turns for ``VersionPicker`` (hundredths of a percent).
    let turns: [Int]

    init(shares: [Share]) {
        self.shares = shares
        turns = shares.map { Int(($0.percent * 100).rounded()) }
    }

    /// The split among instances whose versions are `versions` (one element per instance, any
    /// order), with the `traffic_weight` of each version that has one.
    /// - Returns: nil when no present version has a weight, or only one version is present.
    public static func compute(versions: some Sequence<String>, weights: [String: Double]) -> VersionSplit? {
        var counts: [String: Int] = [:]
        for v in versions { counts[v, default: 0] += 1 }
        guard counts.count > 1 else { return nil }
        var weightedSum = 0.0
        var unweightedInstances = 0
        var anyWeighted = false
        for (v, n) in counts {
            if let w = weights[v] {
                weightedSum += w
                anyWeighted = true
            } else {
                unweightedInstances += n
            }
        }
        guard anyWeighted else { return nil }
        let scaleWeights = weightedSum >= 100 || unweightedInstances == 0
        if scaleWeights && weightedSum == 0 { return nil }  // every version asked for 0%: serve by instance count
        let remainder = scaleWeights ? 0 : 100 - weightedSum
        let shares = counts.keys.sorted().map { v -> Share in
            let n = counts[v]!
            if let w = weights[v] {
                return Share(version: v, percent: scaleWeights ? w / weightedSum * 100 : w, instances: n, weighted: true)
            }
            return Share(version: v, percent: remainder * Double(n) / Double(unweightedInstances), instances: n, weighted: false)
        }
        return VersionSplit(shares: shares)
    }

    /// The index of `version` in ``shares``.
    public func index(of version: Substring) -> Int? {
        shares.firstIndex { $0.version == version }
    }

    /// The traffic weight of each version of `records` (one service's instances): the
    /// `traffic_weight` of the most recently changed instance of the version that has one, so
    /// re-registering one instance with a new weight moves the whole version.
    public static func weights(of records: some Sequence<InstanceRecord>) -> [String: Double] {
        var latest: [String: (index: UInt64, weight: Double)] = [:]
        for r in records {
            guard let w = r.registration.trafficWeight else { continue }
            let v = r.registration.version
            if let seen = latest[v], seen.index > r.modifyIndex { continue }
            latest[v] = (r.modifyIndex, w)
        }
        return latest.mapValues(\.weight)
    }
}

/// Picks the version of each request by smooth weighted round-robin over a ``VersionSplit``'s
/// shares (nginx's rule, as ``WeightedBalancer``): exact to the turn, so 10,000 requests at
/// 90/10 give 9,000 and 1,000, and the canary's turns are spread out rather than bunched.
/// One per service and event loop; pure.
public struct VersionPicker: Sendable {
    var scores: [String: Int] = [:]

    public init() {}

    /// The index of the chosen share in `split.shares`.
    public mutating func pick(_ split: VersionSplit) -> Int {
        var total = 0
        var best = 0
        var bestScore = Int.min
        for (i, share) in split.shares.enumerated() {
            let w = split.turns[i]
            guard w > 0 else { continue }
            let score = (scores[share.version] ?? 0) + w
            scores[share.version] = score
            total += w
            if score > bestScore {
                bestScore = score
                best = i
            }
        }
        scores[split.shares[best].version, default: 0] -= total
        if scores.count > split.shares.count * 4 {
            let live = Set(split.shares.map(\.version))
            scores = scores.filter { live.contains($0.key) }
        }
        return best
    }
}
