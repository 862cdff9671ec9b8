import TapperCore

/// Balancing and passive health, per loop: each loop keeps its own balancer per service, so
/// picking an instance takes no lock.
extension LoopContext {
    /// Picks a candidate of `exchange` not yet tried, with the service's balancer.
    /// - Returns: the candidate's index in the route's candidates, or nil when all were tried.
    func pick(for exchange: Exchange) -> Int? {
        let candidates = exchange.route.candidates
        if exchange.tried.isEmpty {
            // The common case: nothing to filter, and the balancer input is precomputed.
            if candidates.count == 1 { return 0 }
            if candidates.isEmpty { return nil }
            let i = balancer(for: exchange.route.service).balancer.pick(from: exchange.route.balancerCandidates)
            return max(0, min(i, candidates.count - 1))
        }
        var usable: [Int] = []
        for i in candidates.indices where !exchange.tried.contains(i) { usable.append(i) }
        guard !usable.isEmpty else { return nil }
        if usable.count == 1 { return usable[0] }
        let i = balancer(for: exchange.route.service).balancer.pick(from: usable.map { exchange.route.balancerCandidates[$0] })
        return usable[max(0, min(i, usable.count - 1))]
    }

    /// How an attempt began.
    enum AttemptStart {
        /// Every candidate was tried.
        case noInstanceLeft
        /// A pooled connection is the exchange's upstream now.
        case pooled
        /// No idle connection: the caller opens one to `target` (``UpstreamPool/connect(host:port:key:completion:)``).
        case needsConnection(UpstreamTarget)
    }

    /// Starts an attempt of `exchange`: picks an instance (`lastInstance`: the one tried last,
    /// on a fresh connection) and takes a pooled connection to it if there is one.
    func startAttempt(_ exchange: Exchange, lastInstance: Bool) -> AttemptStart {
        guard let index = lastInstance ? exchange.lastTargetIndex : pick(for: exchange) else { return .noInstanceLeft }
        let target = exchange.route.candidates[index]
        exchange.startAttempt(index)
        if !lastInstance, let pooled = pool.takeIdle(exchange.poolKey(target)) {
            exchange.upstream = pooled
            return .pooled
        }
        return .needsConnection(target)
    }

    /// The current attempt of `exchange` is over (answered, failed or abandoned): its balancer
    /// hears of it once (least-connections counts attempts in flight).
    func attemptFinished(_ exchange: Exchange) {
        guard exchange.attemptOpen, let target = exchange.target else { return }
        exchange.attemptOpen = false
        existingBalancer(for: target.service)?.balancer.requestFinished(target.instanceID)
    }

    /// Tells passive health how an attempt on `target` went.
    func noteOutcome(target: UpstreamTarget?, success: Bool) {
        guard let target, let outcomes = gateway.outcomes else { return }
        outcomes.observe(target: target, success: success)
    }

    /// The balancer of `service`, made on first use (the registration's balancer, else the configured one).
    func balancer(for service: String) -> BalancerBox {
        if let last = lastBalancer, last.service == service { return last.box }
        let box: BalancerBox
        if let existing = balancers[service] {
            box = existing
        } else {
            box = BalancerBox(makeBalancer(for: service))
            balancers[service] = box
        }
        lastBalancer = (service, box)
        return box
    }

    /// The balancer of `service` if one was made.
    func existingBalancer(for service: String) -> BalancerBox? {
        if let last = lastBalancer, last.service == service { return last.box }
        return balancers[service]
    }

    private func makeBalancer(for service: String) -> any LoadBalancer {
        let configured = gateway.configuration.loadBalancer
        let name = gateway.state.snapshot.balancerOverrides[service] ?? configured
        return gateway.balancers.make(name) ?? gateway.balancers.make(configured) ?? RoundRobinBalancer()
    }
}
