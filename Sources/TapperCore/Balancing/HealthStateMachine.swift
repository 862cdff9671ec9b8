/// Active health of one instance: probes on an interval, down after `fallThreshold` consecutive
/// failures, up after `riseThreshold` consecutive successes.
///
/// Pure and clock-injected, in the style of async-http-client's pool state machine: events go
/// in, actions come out, and the owner performs them (sends probes, updates routing).
public struct HealthStateMachine<C: Clock>: Sendable where C.Duration == Duration {
    public struct Configuration: Sendable, Hashable {
        public var interval: Duration
        public var timeout: Duration
        public var fallThreshold: Int
        public var riseThreshold: Int

        /// DESIGN.md defaults: every 10 s, 2 s timeout, down after 3 failures, up after 2 successes.
        public init(interval: Duration = .seconds(10), timeout: Duration = .seconds(2), fallThreshold: Int = 3, riseThreshold: Int = 2) {
            self.interval = interval
            self.timeout = timeout
            self.fallThreshold = max(1, fallThreshold)
            self.riseThreshold = max(1, riseThreshold)
        }
    }

    public enum Status: String, Sendable, Hashable {
        /// Receives traffic. New instances start here (a registration is a claim of health).
        case healthy
        /// Failed its probes; receives no traffic until it passes `riseThreshold` in a row.
        case unhealthy
    }

    public enum Action: Sendable, Hashable {
        case none
        case markHealthy
        case markUnhealthy
    }

    public let configuration: Configuration
    public private(set) var status: Status = .healthy
    private(set) var consecutiveFailures = 0
    private(set) var consecutiveSuccesses = 0
    /// When the next probe is due.
    public private(set) var nextProbe: C.Instant

    public init(configuration: Configuration, now: C.Instant) {
        self.configuration = configuration
        self.nextProbe = now
    }

    /// Whether a probe should be sent at `now`.
    public func probeDue(at now: C.Instant) -> Bool { now >= nextProbe }

    /// Records that a probe was sent at `now`; the next one is due an interval later.
    public mutating func probeStarted(at now: C.Instant) {
        nextProbe = now.advanced(by: configuration.interval)
    }

    public mutating func probeSucceeded() -> Action {
        consecutiveFailures = 0
        consecutiveSuccesses += 1
        if status == .unhealthy && consecutiveSuccesses >= configuration.riseThreshold {
            status = .healthy
            return .markHealthy
        }
        return .none
    }

    public mutating func probeFailed() -> Action {
        consecutiveSuccesses = 0
        consecutiveFailures += 1
        if status == .healthy && consecutiveFailures >= configuration.fallThreshold {
            status = .unhealthy
            return .markUnhealthy
        }
        return .none
    }
}
