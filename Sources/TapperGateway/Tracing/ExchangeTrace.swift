import TapperCore

/// The trace context of one proxied request when tracing is on: the gateway's own span (a
/// child of the caller's `traceparent`, or a new trace's root), which the upstream receives as
/// its parent, and whether the span is recorded.
struct ExchangeTrace {
    /// The trace id, the gateway span's id and the flags sent upstream.
    var context: TraceParent
    /// The caller's span id (0: the gateway started the trace).
    var parentSpanID: UInt64
    /// The gateway started the trace and made the request id: the request id is the trace id's
    /// hex digits, and the span id is the trace id's low half (a root span's id may be any
    /// value unique in its trace; Zipkin's roots reuse their trace id the same way), so
    /// `traceparent` is copied from the request id rather than written digit by digit.
    var traceIDIsRequestID = false
    // (A plain value: the exchange keeps the span's `Host` apart, so that reading this copies
    // no reference.)

    var sampled: Bool { context.sampled }
}
