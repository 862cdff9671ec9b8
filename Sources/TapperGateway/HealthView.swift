/// Which upstream targets may receive traffic now. The balancing-and-health layer fills this
/// from active and passive health checks; until an instance has been judged it is routable.
public protocol HealthView: Sendable {
    /// The subset of `targets` that may receive new requests.
    func routable(_ targets: [UpstreamTarget]) -> [UpstreamTarget]
}

/// Treats every registered instance as healthy.
public struct AllHealthy: HealthView {
    public init() {}
    public func routable(_ targets: [UpstreamTarget]) -> [UpstreamTarget] { targets }
}
