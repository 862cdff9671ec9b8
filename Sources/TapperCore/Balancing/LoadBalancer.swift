/// Chooses one instance among the candidates of a route.
///
/// Balancers are value types that never do I/O; the gateway keeps one per service and event
/// loop. It calls ``pick(from:)`` for each request attempt and ``requestFinished(_:)`` when the
/// attempt ends, so balancers that track in-flight work (least-connections) can do so.
///
/// Plug in your own by conforming to this protocol and registering a factory under a name with
/// the gateway's `BalancerFactory`; registrations select it with `"load_balancer": "name"`:
///
/// ```swift
/// struct FirstHealthy: LoadBalancer {
///     mutating func pick(from candidates: [BalancerCandidate]) -> Int { 0 }
/// }
/// var balancers = BalancerFactory()
/// balancers.register("first") { FirstHealthy() }
/// ```
public protocol LoadBalancer: Sendable {
    /// Picks one of `candidates` (never empty), returning its index.
    mutating func pick(from candidates: [BalancerCandidate]) -> Int
    /// Called when a request to `instanceID` has finished (successfully or not).
    mutating func requestFinished(_ instanceID: String)
}

extension LoadBalancer {
    public mutating func requestFinished(_ instanceID: String) {}
}

/// What a balancer knows about one candidate instance.
public struct BalancerCandidate: Hashable, Sendable {
    public var instanceID: String
    /// The registration's `weight` (1…1000).
    public var weight: Int

    public init(instanceID: String, weight: Int = 1) {
        self.instanceID = instanceID
        self.weight = weight
    }
}

/// Round-robin: each pick takes the next candidate in turn.
public struct RoundRobinBalancer: LoadBalancer {
    var counter: UInt

    /// - Parameter start: where the rotation begins (the gateway starts each event loop's
    ///   balancer at a random offset so loops do not all begin with the same instance).
    public init(start: UInt = 0) {
        counter = start
    }

    public mutating func pick(from candidates: [BalancerCandidate]) -> Int {
        let i = Int(counter % UInt(candidates.count))
        counter &+= 1
        return i
    }
}

/// Uniformly random choice, from an injected generator (tests pass a seeded one).
public struct RandomBalancer<G: RandomNumberGenerator & Sendable>: LoadBalancer {
    var generator: G

    public init(generator: G) {
        self.generator = generator
    }

    public mutating func pick(from candidates: [BalancerCandidate]) -> Int {
        Int.random(in: 0..<candidates.count, using: &generator)
    }
}

extension RandomBalancer where G == SystemRandomNumberGenerator {
    public init() { self.init(generator: SystemRandomNumberGenerator()) }
}

/// Least-connections by "power of two choices": two distinct random candidates, the one with
/// fewer requests in flight wins (ties: the first drawn). This avoids the herd effect of always
/// picking the global minimum while still steering work away from busy instances.
public struct LeastConnectionsBalancer<G: RandomNumberGenerator & Sendable>: LoadBalancer {
    var generator: G
    /// Requests in flight per instance, as this balancer sent them.
    public private(set) var inFlight: [String: Int] = [:]

    public init(generator: G) {
        self.generator = generator
    }

    public mutating func pick(from candidates: [BalancerCandidate]) -> Int {
        let chosen: Int
        if candidates.count == 1 {
            chosen = 0
        } else {
            let a = Int.random(in: 0..<candidates.count, using: &generator)
            var b = Int.random(in: 0..<(candidates.count - 1), using: &generator)
            if b >= a { b += 1 }
            chosen = load(candidates[b]) < load(candidates[a]) ? b : a
        }
        inFlight[candidates[chosen].instanceID, default: 0] += 1
        return chosen
    }

    func load(_ c: BalancerCandidate) -> Int { inFlight[c.instanceID] ?? 0 }

    public mutating func requestFinished(_ instanceID: String) {
        guard let n = inFlight[instanceID] else { return }
        inFlight[instanceID] = n > 1 ? n - 1 : nil
    }
}

extension LeastConnectionsBalancer where G == SystemRandomNumberGenerator {
    public init() { self.init(generator: SystemRandomNumberGenerator()) }
}

/// Smooth weighted round-robin, as nginx does it: each pick adds every candidate's weight to its
/// running score, takes the highest score and subtracts the total weight from it. Weights 5:1:1
/// give `a a b a c a a`, spreading the heavy instance's turns instead of bunching them.
public struct WeightedBalancer: LoadBalancer {
    var current: [String: Int] = [:]

    public init() {}

    public mutating func pick(from candidates: [BalancerCandidate]) -> Int {
        var total = 0
        var best = 0
        var bestScore = Int.min
        for (i, c) in candidates.enumerated() {
            let w = max(1, c.weight)
            let score = (current[c.instanceID] ?? 0) + w
            current[c.instanceID] = score
            total += w
            if score > bestScore {
                bestScore = score
                best = i
            }
        }
        current[candidates[best].instanceID, default: 0] -= total
        if current.count > candidates.count * 4 {
            // Forget instances that left the candidate set long ago.
            let live = Set(candidates.map(\.instanceID))
            current = current.filter { live.contains($0.key) }
        }
        return best
    }
}

/// A small, fast, seedable generator (SplitMix64) for balancers and tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
