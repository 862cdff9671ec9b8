/// Chooses one instance among the candidates of a route.
///
/// Balancers are value types owned by one gateway structure; they never do I/O. The gateway
/// calls ``pick(from:)`` for each request and ``requestFinished(_:)`` when it completes, so
/// balancers that track in-flight work (least-connections) can do so.
///
/// To plug in your own, conform to this protocol and register a factory with the gateway.
public protocol LoadBalancer: Sendable {
    /// Picks one of `candidates` (never empty), returning its index.
    mutating func pick(from candidates: [BalancerCandidate]) -> Int
    /// Called when a request to `instanceID` has finished.
    mutating func requestFinished(_ instanceID: String)
}

extension LoadBalancer {
    public mutating func requestFinished(_ instanceID: String) {}
}

/// What a balancer knows about one candidate instance.
public struct BalancerCandidate: Hashable, Sendable {
    public var instanceID: String
    public var weight: Int
    /// Requests in flight to this instance, as counted by the gateway.
    public var inFlight: Int

    public init(instanceID: String, weight: Int = 1, inFlight: Int = 0) {
        self.instanceID = instanceID
        self.weight = weight
        self.inFlight = inFlight
    }
}

/// Round-robin: each pick takes the next candidate in turn.
public struct RoundRobinBalancer: LoadBalancer {
    var counter: UInt = 0

    public init() {}

    public mutating func pick(from candidates: [BalancerCandidate]) -> Int {
        let i = Int(counter % UInt(candidates.count))
        counter &+= 1
        return i
    }
}
