import NIOCore
import TapperCore

/// Tracing on the I/O thread: starting a request's span (ids from the loop's generator) and
/// recording it when the request is over. Only called when `--otlp-endpoint` is set.
extension LoopContext {
    /// The gateway span of a request: a child of a valid incoming `traceparent`, else the root
    /// of a new trace; sampled as the ``TraceSampler`` decides.
    /// - Parameters:
    ///   - headBytes: the request head (`Host`'s value is read from it).
    ///   - newTraceID: the id of the trace it starts when there is no incoming one, made
    ///     already (``requestID(_:tracing:)``); nil: made here.
    /// - Returns: the trace, and the ``SpanHost`` of the request's `Host` when the span is recorded.
    func startTrace(
        _ request: RequestAdmission.Request, headBytes: ByteBuffer, sampler: TraceSampler, newTraceID: (high: UInt64, low: UInt64)?
    ) -> (ExchangeTrace, SpanHost?) {
        let high: UInt64
        let low: UInt64
        var span: UInt64
        if let parent = request.traceParent {
            high = parent.traceIDHigh
            low = parent.traceIDLow
            span = requestIDs.next()
        } else if let newTraceID {
            // The request id spells the trace id (``ExchangeTrace/traceIDIsRequestID``).
            (high, low) = newTraceID
            span = low
        } else {
            (high, low) = requestIDs.traceID()
            span = requestIDs.next()
        }
        while span == 0 { span = requestIDs.next() }
        let sampled = sampler.shouldSample(parent: request.traceParent, traceIDLow: low)
        var host: SpanHost?
        if sampled, let range = request.host, let spansRef {
            host = spansRef._withUnsafeGuaranteedRef { spans in
                headBytes.withUnsafeReadableBytes { spans.host(UnsafeRawBufferPointer(rebasing: $0[range])) }
            }
        }
        return (
            ExchangeTrace(
                context: TraceParent(traceIDHigh: high, traceIDLow: low, spanID: span, flags: sampled ? 1 : 0), parentSpanID: request.traceParent?.spanID ?? 0,
                traceIDIsRequestID: span == low && newTraceID != nil && request.traceParent == nil),
            host
        )
    }

    /// The request's `X-Request-ID`, and the id of the trace it starts (when it does): a
    /// caller's acceptable id is kept; else, when tracing is on and the request brings no
    /// `traceparent`, the gateway starts the trace and the request id is its trace id (one
    /// random value, and logs and traces share the id); else a new random id.
    func requestID(_ request: RequestAdmission.Request, tracing: Bool) -> (String, newTraceID: (high: UInt64, low: UInt64)?) {
        if HeaderRules.acceptableRequestID(request.clientRequestID) { return (request.clientRequestID, nil) }
        guard tracing, request.traceParent == nil else { return (requestIDs.make(), nil) }
        let id = requestIDs.traceID()
        return (RequestIDGenerator.string(id.high, id.low), id)
    }

    /// Records the span of a finished exchange (when sampled) into the loop's buffer.
    /// - Parameter finished: when the exchange ended (uptime clock, as `exchange.started`).
    func recordSpan(_ exchange: Exchange, finished: NIODeadline) {
        guard let spansRef, let trace = exchange.trace, trace.sampled else { return }
        spansRef._withUnsafeGuaranteedRef { spans in
            let start = spans.unixNanos(exchange.started)
            let end = spans.unixNanos(finished)
            spans.template(of: exchange, instance: exchange.target?.spanInstanceRef)._withUnsafeGuaranteedRef { template in
                spans.chunk.append(
                    context: trace.context, parentSpanID: trace.parentSpanID, startUnixNanos: start, endUnixNanos: end, template: template,
                    path: exchange.path, status: exchange.status, failed: !exchange.endedWell,
                    outcome: exchange.outcome, retries: exchange.attempts - 1
                )
            }
            spans.appended()
        }
    }
}
