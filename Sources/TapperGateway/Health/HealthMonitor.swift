import Synchronization
import TapperCore

/// The gateway's view of instance health: active probe results (one ``HealthStateMachine`` per
/// instance) and passive outlier ejection (``OutlierDetector``), combined into which targets may
/// receive traffic. Thread-safe; the data path asks it once per request.
public final class HealthMonitor: Sendable {
    public struct Configuration: Sendable {
        public var active: HealthStateMachine<ContinuousClock>.Configuration
        /// Send active probes at all.
        public var activeChecks: Bool
        public var outlier: OutlierDetector<ContinuousClock>.Configuration
        /// When every instance of a service is out, route to all of them anyway (Envoy's panic
        /// mode) instead of answering 503.
        public var panicRouting: Bool

        public init(
            active: HealthStateMachine<ContinuousClock>.Configuration = .init(), activeChecks: Bool = true,
            outlier: OutlierDetector<ContinuousClock>.Configuration = .init(), panicRouting: Bool = false
        ) {
            self.active = active
            self.activeChecks = activeChecks
            self.outlier = outlier
            self.panicRouting = panicRouting
        }
    }

    struct State: Sendable {
        var machines: [String: HealthStateMachine<ContinuousClock>] = [:]
        var targets: [String: UpstreamTarget] = [:]
        var byService: [String: [String]] = [:]
        var outlier: OutlierDetector<ContinuousClock>
        var ejectionsTotal: [String: Int] = [:]
        var probesInFlight: Set<String> = []
        /// Instances that are (or recently were) unhealthy or ejected. Kept small so the data
        /// path can skip all per-target work when it is empty.
        var unroutable: Set<String> = []

        func isStillOut(_ key: String) -> Bool {
            machines[key]?.status == .unhealthy || outlier.isEjected(key)
        }

        /// Drops entries whose ejection ran out and whose probes pass again.
        mutating func refreshUnroutable() {
            unroutable = unroutable.filter { isStillOut($0) }
        }
    }

    public let configuration: Configuration
    private let state: Mutex<State>
    /// Lock-free summaries of ``state`` for the data path, stored after every change under the
    /// lock: nothing is unroutable (``routable(_:)`` returns its input), and no instance has
    /// failure history (a success changes nothing). A request racing a change sees either value,
    /// which is as if it had happened just before or after.
    private let allRoutable = Atomic<Bool>(true)
    private let noFailureHistory = Atomic<Bool>(true)

    private func publish(_ s: State) {
        allRoutable.store(s.unroutable.isEmpty, ordering: .releasing)
        noFailureHistory.store(s.outlier.isPristine, ordering: .releasing)
    }

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        state = Mutex(State(outlier: OutlierDetector(configuration: configuration.outlier, clock: ContinuousClock())))
    }

    /// Follows the catalog: new instances start healthy, departed ones are forgotten.
    public func sync(_ snapshot: RoutingSnapshot) {
        let now = ContinuousClock.now
        state.withLock { s in
            var byService: [String: [String]] = [:]
            for (key, target) in snapshot.instances {
                byService[target.service, default: []].append(key)
                if s.machines[key] == nil || s.targets[key]?.url != target.url || s.targets[key]?.healthEndpoint != target.healthEndpoint {
                    s.machines[key] = HealthStateMachine(configuration: configuration.active, now: now)
                }
            }
            s.targets = snapshot.instances
            for key in s.machines.keys where snapshot.instances[key] == nil { s.machines[key] = nil }
            for key in s.unroutable where s.machines[key]?.status != .unhealthy && !s.outlier.isEjected(key) { s.unroutable.remove(key) }
            s.byService = byService
            s.outlier.retain(only: Set(snapshot.instances.keys))
            s.unroutable = s.unroutable.filter { snapshot.instances[$0] != nil }
            s.ejectionsTotal = s.ejectionsTotal.filter { snapshot.instances[$0.key] != nil }
            publish(s)
        }
    }

    /// Targets whose active probes are due now; each is marked as started.
    func dueProbes() -> [UpstreamTarget] {
        guard configuration.activeChecks else { return [] }
        let now = ContinuousClock.now
        return state.withLock { s in
            var due: [UpstreamTarget] = []
            for (key, var machine) in s.machines where machine.probeDue(at: now) && !s.probesInFlight.contains(key) {
                guard let target = s.targets[key] else { continue }
                machine.probeStarted(at: now)
                s.machines[key] = machine
                s.probesInFlight.insert(key)
                due.append(target)
            }
            return due
        }
    }

    /// When the next probe falls due (nil: no instance to probe).
    func nextProbeDue() -> ContinuousClock.Instant? {
        guard configuration.activeChecks else { return nil }
        return state.withLock { s in s.machines.values.lazy.map(\.nextProbe).min() }
    }

    /// Applies a probe result. Returns the resulting transition, if any.
    @discardableResult
    func probeFinished(_ key: String, success: Bool) -> HealthStateMachine<ContinuousClock>.Action {
        state.withLock { s in
            s.probesInFlight.remove(key)
            guard var machine = s.machines[key] else { return .none }
            let action = success ? machine.probeSucceeded() : machine.probeFailed()
            s.machines[key] = machine
            if action == .markUnhealthy { s.unroutable.insert(key) }
            s.refreshUnroutable()
            publish(s)
            return action
        }
    }
}

extension HealthMonitor: DescribingHealthView {
    public func routable(_ targets: [UpstreamTarget]) -> [UpstreamTarget] {
        // Fast path: nothing is down (the common case) — no lock, no new array.
        if allRoutable.load(ordering: .acquiring) { return targets }
        let usable = state.withLock { s -> [UpstreamTarget] in
            // Fast path: nothing is down (the common case) — no new array.
            if s.unroutable.isEmpty { return targets }
            return targets.filter { !s.unroutable.contains($0.key) || !s.isStillOut($0.key) }
        }
        if usable.isEmpty && configuration.panicRouting { return targets }
        return usable
    }

    public func describe(service: String, instanceID: String) -> String? {
        let key = service + "/" + instanceID
        return state.withLock { s in
            if s.outlier.isEjected(key) { return "ejected" }
            if s.machines[key]?.status == .unhealthy { return "unhealthy" }
            return "healthy"
        }
    }
}

extension HealthMonitor: OutcomeObserver {
    /// Passive health: every real request's outcome.
    public func observe(target: UpstreamTarget, success: Bool) {
        // A success for an instance without failure history changes nothing: no lock.
        if success && noFailureHistory.load(ordering: .acquiring) { return }
        state.withLock { s in
            if success {
                s.outlier.recordSuccess(target.key)
                if !s.unroutable.isEmpty { s.refreshUnroutable() }
            } else if case .ejected = s.outlier.recordFailure(target.key, service: s.byService[target.service] ?? [target.key]) {
                s.ejectionsTotal[target.key, default: 0] += 1
                s.unroutable.insert(target.key)
            }
            publish(s)
        }
    }
}

extension HealthMonitor: MetricsSource {
    public func prometheusText() -> String {
        state.withLock { s in
            var out = "# HELP tapper_instance_healthy 1 when the instance may receive traffic.\n# TYPE tapper_instance_healthy gauge\n"
            for key in s.targets.keys.sorted() {
                guard let t = s.targets[key] else { continue }
                let up = s.machines[key]?.status != .unhealthy && !s.outlier.isEjected(key)
                out += "tapper_instance_healthy{service=\"\(t.service)\",instance=\"\(t.instanceID)\"} \(up ? 1 : 0)\n"
            }
            out += "# HELP tapper_ejections_total Outlier ejections per instance.\n# TYPE tapper_ejections_total counter\n"
            for key in s.targets.keys.sorted() {
                guard let t = s.targets[key] else { continue }
                out += "tapper_ejections_total{service=\"\(t.service)\",instance=\"\(t.instanceID)\"} \(s.ejectionsTotal[key] ?? 0)\n"
            }
            return out
        }
    }
}
