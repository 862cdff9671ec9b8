import Testing
import TapperCore

@Suite struct BalancerTests {
    let three = [BalancerCandidate(instanceID: "a"), BalancerCandidate(instanceID: "b"), BalancerCandidate(instanceID: "c")]

    func distribution(_ balancer: inout some LoadBalancer, _ candidates: [BalancerCandidate], picks: Int = 10_000, finish: Bool = true) -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<picks {
            let id = candidates[balancer.pick(from: candidates)].instanceID
            counts[id, default: 0] += 1
            if finish { balancer.requestFinished(id) }
        }
        return counts
    }

    @Test func roundRobinIsExact() {
        var rr = RoundRobinBalancer()
        let order = (0..<6).map { _ in three[rr.pick(from: three)].instanceID }
        #expect(order == ["a", "b", "c", "a", "b", "c"])
        var counted = RoundRobinBalancer(start: 7)
        #expect(distribution(&counted, three, picks: 9999) == ["a": 3333, "b": 3333, "c": 3333])
    }

    @Test func randomIsUniformWithinTolerance() {
        var r = RandomBalancer(generator: SplitMix64(seed: 42))
        let d = distribution(&r, three)
        for id in ["a", "b", "c"] { #expect(abs(d[id, default: 0] - 3333) < 250, "\(d)") }
        // Same seed, same sequence: the generator really is injected.
        var x = RandomBalancer(generator: SplitMix64(seed: 7))
        var y = RandomBalancer(generator: SplitMix64(seed: 7))
        let xs = (0..<20).map { _ in x.pick(from: three) }
        let ys = (0..<20).map { _ in y.pick(from: three) }
        #expect(xs == ys)
    }

    @Test func weightedFollowsWeightsSmoothly() {
        let weighted = [BalancerCandidate(instanceID: "a", weight: 5), BalancerCandidate(instanceID: "b", weight: 1), BalancerCandidate(instanceID: "c", weight: 1)]
        var w = WeightedBalancer()
        // nginx's documented sequence for 5:1:1.
        let order = (0..<7).map { _ in weighted[w.pick(from: weighted)].instanceID }
        #expect(order == ["a", "a", "b", "a", "c", "a", "a"])
        var counted = WeightedBalancer()
        #expect(distribution(&counted, weighted, picks: 7000) == ["a": 5000, "b": 1000, "c": 1000])
    }

    @Test func leastConnectionsPrefersIdleInstances() {
        var lc = LeastConnectionsBalancer(generator: SplitMix64(seed: 1))
        // Requests that never finish pile up; picks must spread so in-flight stays balanced.
        let d = distribution(&lc, three, picks: 3000, finish: false)
        for id in ["a", "b", "c"] { #expect(abs(d[id, default: 0] - 1000) <= 60, "\(d)") }
        // Make "a" busy; new picks go elsewhere far more often than 1/3 of the time.
        var busy = LeastConnectionsBalancer(generator: SplitMix64(seed: 2))
        for _ in 0..<50 {
            let i = busy.pick(from: [three[0]])
            #expect(i == 0)
        }
        var toA = 0
        for _ in 0..<1000 {
            let id = three[busy.pick(from: three)].instanceID
            if id == "a" { toA += 1 }
            busy.requestFinished(id)
        }
        #expect(toA < 100, "a got \(toA) of 1000 while 50 requests were in flight on it")
        #expect(busy.inFlight["a"] == 50)
    }

    @Test func aCustomBalancerConforms() {
        struct AlwaysLast: LoadBalancer {
            mutating func pick(from candidates: [BalancerCandidate]) -> Int { candidates.count - 1 }
        }
        var b: any LoadBalancer = AlwaysLast()
        #expect(b.pick(from: three) == 2)
    }
}

@Suite struct HealthStateMachineTests {
    let clock = MockClockForCore()

    @Test func downAfterFallThresholdUpAfterRise() {
        var m = HealthStateMachine<MockClockForCore>(configuration: .init(fallThreshold: 3, riseThreshold: 2), now: clock.now)
        #expect(m.status == .healthy)
        #expect(m.probeFailed() == .none)
        #expect(m.probeFailed() == .none)
        #expect(m.probeSucceeded() == .none)  // resets the failure run
        #expect(m.probeFailed() == .none)
        #expect(m.probeFailed() == .none)
        #expect(m.probeFailed() == .markUnhealthy)
        #expect(m.status == .unhealthy)
        #expect(m.probeFailed() == .none)
        #expect(m.probeSucceeded() == .none)
        #expect(m.probeSucceeded() == .markHealthy)
        #expect(m.status == .healthy)
    }

    @Test func probesFollowTheInterval() {
        var m = HealthStateMachine<MockClockForCore>(configuration: .init(interval: .seconds(10)), now: clock.now)
        #expect(m.probeDue(at: clock.now))
        m.probeStarted(at: clock.now)
        clock.advance(by: .seconds(9))
        #expect(!m.probeDue(at: clock.now))
        clock.advance(by: .seconds(1))
        #expect(m.probeDue(at: clock.now))
    }
}

@Suite struct OutlierDetectorTests {
    let clock = MockClockForCore()
    let service = ["a", "b", "c", "d"]

    @Test func consecutiveFailuresEjectWithGrowingBackoff() {
        var o = OutlierDetector(configuration: .init(consecutiveFailures: 3, baseEjection: .seconds(10), maxEjection: .seconds(25)), clock: clock)
        #expect(o.recordFailure("a", service: service) == .none)
        #expect(o.recordFailure("a", service: service) == .none)
        o.recordSuccess("a")  // breaks the run
        #expect(o.recordFailure("a", service: service) == .none)
        #expect(o.recordFailure("a", service: service) == .none)
        guard case .ejected(_, 1) = o.recordFailure("a", service: service) else { Issue.record("expected an ejection"); return }
        #expect(o.isEjected("a"))
        clock.advance(by: .seconds(9))
        #expect(o.isEjected("a"))
        clock.advance(by: .seconds(1))
        #expect(!o.isEjected("a"))
        // On probation: one failure ejects again, for twice as long.
        guard case .ejected(let until, 2) = o.recordFailure("a", service: service) else { Issue.record("expected a second ejection"); return }
        #expect(clock.now.duration(to: until) == .seconds(20))
        clock.advance(by: .seconds(20))
        // Third time is capped at maxEjection.
        guard case .ejected(let until3, 3) = o.recordFailure("a", service: service) else { Issue.record("expected a third ejection"); return }
        #expect(clock.now.duration(to: until3) == .seconds(25))
    }

    @Test func successesAfterAnEjectionForgiveIt() {
        var o = OutlierDetector(configuration: .init(consecutiveFailures: 2, baseEjection: .seconds(10), successesToForgive: 3), clock: clock)
        _ = o.recordFailure("a", service: service)
        _ = o.recordFailure("a", service: service)
        clock.advance(by: .seconds(10))
        for _ in 0..<3 { o.recordSuccess("a") }
        #expect(o.ejections("a") == 0)
        #expect(o.recordFailure("a", service: service) == .none)  // full threshold again
    }

    @Test func neverEjectsMoreThanTheShare() {
        var o = OutlierDetector(configuration: .init(consecutiveFailures: 1, maxEjectedShare: 0.5), clock: clock)
        guard case .ejected = o.recordFailure("a", service: service) else { Issue.record("a"); return }
        guard case .ejected = o.recordFailure("b", service: service) else { Issue.record("b"); return }
        #expect(o.recordFailure("c", service: service) == .ejectionSkipped)
        #expect(!o.isEjected("c"))
        // A lone instance is never ejected at 50%.
        var single = OutlierDetector(configuration: .init(consecutiveFailures: 1, maxEjectedShare: 0.5), clock: clock)
        #expect(single.recordFailure("x", service: ["x"]) == .ejectionSkipped)
    }
}
