import NIOCore
import TapperCore

extension RequestAdmission {
    /// Narrows a route's candidates to one version of its service: the version the request
    /// pins with the version header (strict: none routable → 503), else the one its version
    /// cookie names (soft: gone → the split decides), else the split's next turn on this loop.
    /// Runs only when the request pins a version or the route's versions split the traffic.
    /// - Parameter allRoutable: every target of the entry is routable (the snapshot's
    ///   precomputed split and subsets apply).
    /// - Returns: the error to answer, or nil with the candidates narrowed.
    func narrowToVersion(
        service: String, entryIndex: Int, allRoutable: Bool, _ candidates: inout [UpstreamTarget], _ balancerCandidates: inout [BalancerCandidate],
        pin: String?, _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, snapshot: SnapshotRef, loop: LoopContext
    ) -> GatewayError? {
        if let pin {
            let subset = candidates.filter { $0.version == pin }
            if subset.isEmpty {
                return .versionUnavailable(service: service, version: pin, header: gateway.configuration.versionHeaderName)
            }
            if subset.count != candidates.count { Self.narrow(&candidates, &balancerCandidates, to: subset) }
            return nil
        }
        guard var split = snapshot.versionSplits[entryIndex] else { return nil }
        if !allRoutable {
            // Some instances are down or ejected: split what is left by the same weights.
            guard let left = VersionSplit.compute(versions: candidates.lazy.map(\.version), weights: snapshot.value.trafficWeights[service] ?? [:])
            else { return nil }
            split = left
        }
        var chosen: Int? = nil
        let cookie = gateway.configuration.versionCookie
        if !cookie.isEmpty, let value = Self.cookie(cookie, head, headBytes) { chosen = split.index(of: value) }
        let share = chosen ?? loop.versionPickers[service, default: VersionPicker()].pick(split)
        if allRoutable {
            let subset = snapshot.value.versionTargets[entryIndex][share]
            candidates = subset.targets
            balancerCandidates = subset.balancerCandidates
        } else {
            let version = split.shares[share].version
            Self.narrow(&candidates, &balancerCandidates, to: candidates.filter { $0.version == version })
        }
        return nil
    }

    private static func narrow(_ candidates: inout [UpstreamTarget], _ balancerCandidates: inout [BalancerCandidate], to subset: [UpstreamTarget]) {
        candidates = subset
        balancerCandidates = subset.map { BalancerCandidate(instanceID: $0.instanceID, weight: $0.weight) }
    }

    /// The value of cookie `name` in the request's `Cookie` headers.
    private static func cookie(_ name: String, _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer) -> Substring? {
        headBytes.withUnsafeReadableBytes { raw in
            for h in head.headers where raw.equalsIgnoringCase(h.name, "cookie") {
                let header = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                if let v = CookieHeader.value(named: name, in: header) { return v }
            }
            return nil
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether the bytes at `range` equal `lower` (lower-case ASCII) ignoring ASCII case.
    @inline(__always)
    func equalsLowercased(_ range: Range<Int>, _ lower: [UInt8]) -> Bool {
        guard range.count == lower.count else { return false }
        var i = range.lowerBound
        for l in lower {
            var b = self[i]
            if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") { b |= 0x20 }
            if b != l { return false }
            i += 1
        }
        return true
    }
}
