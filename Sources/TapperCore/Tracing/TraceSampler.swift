/// The gateway's sampling decision: parent-based, with a trace-id ratio for new traces — the
/// OpenTelemetry `ParentBased(TraceIdRatioBased(rate))` sampler.
///
/// A request whose valid `traceparent` says sampled is sampled, one that says not sampled is
/// not (the caller decided for the whole trace); a new trace is sampled when its trace id's
/// last 8 bytes fall below `rate × 2⁶⁴`, so every hop that uses the same rule agrees.
public struct TraceSampler: Sendable, Equatable {
    /// The share of new traces sampled, 0...1.
    public let rate: Double
    /// `rate` as a bound on the trace id's low 64 bits (`UInt64.max`: everything).
    let bound: UInt64
    let all: Bool

    public init(rate: Double) {
        let r = min(max(rate.isNaN ? 0 : rate, 0), 1)
        self.rate = r
        all = r >= 1
        // 2⁶⁴ × r, computed in Double: exact enough for a sampling share.
        bound = r >= 1 ? .max : UInt64(r * 18_446_744_073_709_551_616.0)
    }

    /// Whether a request's span is recorded.
    /// - Parameters:
    ///   - parent: the valid incoming `traceparent`, nil when absent or invalid.
    ///   - traceIDLow: the low half of the trace id the span belongs to.
    public func shouldSample(parent: TraceParent?, traceIDLow: UInt64) -> Bool {
        if let parent { return parent.sampled }
        return all || traceIDLow < bound
    }
}
