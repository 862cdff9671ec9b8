/// Passive health (outlier ejection), modelled on Envoy's outlier detection: consecutive
/// failures of real requests (connection errors or 5xx) eject an instance for
/// `baseEjection × times ejected before`, capped at `maxEjection`. At most `maxEjectedShare` of
/// a service's instances are ejected at once, so a bad deploy cannot empty a service. When the
/// period ends the instance is back on probation: one more failure ejects it again (for longer);
/// `successesToForgive` successes in a row reset its history.
///
/// Pure and clock-injected: the gateway feeds outcomes and asks whether an instance is ejected.
public struct OutlierDetector<C: Clock>: Sendable where C.Duration == Duration {
    public struct Configuration: Sendable, Hashable {
        public var consecutiveFailures: Int
        public var baseEjection: Duration
        public var maxEjection: Duration
        public var maxEjectedShare: Double
        public var successesToForgive: Int

        public init(
            consecutiveFailures: Int = 5, baseEjection: Duration = .seconds(30), maxEjection: Duration = .seconds(300),
            maxEjectedShare: Double = 0.5, successesToForgive: Int = 5
        ) {
            self.consecutiveFailures = max(1, consecutiveFailures)
            self.baseEjection = baseEjection
            self.maxEjection = maxEjection
            self.maxEjectedShare = min(1, max(0, maxEjectedShare))
            self.successesToForgive = max(1, successesToForgive)
        }
    }

    struct Record: Sendable {
        var failures = 0
        var successes = 0
        var ejections = 0
        var ejectedUntil: C.Instant?
        /// Back from an ejection and not yet forgiven: the next failure ejects again.
        var probation = false
    }

    public enum Event: Sendable, Hashable {
        case none
        case ejected(until: C.Instant, times: Int)
        /// Would have been ejected, but the service is at its ejection limit.
        case ejectionSkipped
    }

    public let configuration: Configuration
    public let clock: C
    var records: [String: Record] = [:]

    public init(configuration: Configuration = .init(), clock: C) {
        self.configuration = configuration
        self.clock = clock
    }

    /// Whether `instance` is ejected now.
    public func isEjected(_ instance: String) -> Bool {
        guard let until = records[instance]?.ejectedUntil else { return false }
        return clock.now < until
    }

    /// How many times `instance` has been ejected (0 when forgiven).
    public func ejections(_ instance: String) -> Int { records[instance]?.ejections ?? 0 }

    /// Records a successful response.
    ///
    /// An instance without a record (never failed, or forgiven) has nothing to count: successes
    /// only matter after a failure, which resets them. So the common case changes nothing, and a
    /// forgiven instance's record is dropped rather than kept as a fresh one.
    public mutating func recordSuccess(_ instance: String) {
        guard var r = records[instance] else { return }
        r.failures = 0
        r.successes += 1
        if r.successes >= configuration.successesToForgive && !isEjected(instance) {
            records[instance] = nil
            return
        }
        records[instance] = r
    }

    /// Whether no instance has any failure history: every success is then a no-op.
    public var isPristine: Bool { records.isEmpty }

    /// Records a failure (connection error, timeout or 5xx).
    /// - Parameters:
    ///   - instance: the failing instance.
    ///   - service: every instance of its service, to enforce the ejection share.
    public mutating func recordFailure(_ instance: String, service: [String]) -> Event {
        var r = records[instance] ?? Record()
        let now = clock.now
        if let until = r.ejectedUntil, now < until {
            records[instance] = r
            return .none
        }
        if r.ejectedUntil != nil {
            r.ejectedUntil = nil
            r.probation = true
        }
        r.successes = 0
        r.failures += 1
        let threshold = r.probation ? 1 : configuration.consecutiveFailures
        guard r.failures >= threshold else {
            records[instance] = r
            return .none
        }
        let ejectedNow = service.filter { $0 != instance && isEjected($0) }.count
        let allowed = Int((Double(service.count) * configuration.maxEjectedShare).rounded(.down))
        guard ejectedNow + 1 <= max(allowed, 0), service.count > 1 || allowed >= 1 else {
            records[instance] = r
            return .ejectionSkipped
        }
        r.ejections += 1
        r.failures = 0
        r.probation = false
        let period = min(configuration.baseEjection * r.ejections, configuration.maxEjection)
        let until = now.advanced(by: period)
        r.ejectedUntil = until
        records[instance] = r
        return .ejected(until: until, times: r.ejections)
    }

    /// Forgets instances that left the catalog.
    public mutating func retain(only instances: Set<String>) {
        records = records.filter { instances.contains($0.key) }
    }
}
