import NIOCore
import TapperCore

/// Tracing on the I/O thread: starting a request's span (ids from the loop's generator) and
/// recording it when the request is over. Only called when `--otlp-endpoint` is set.
extension LoopContext {
    /// The gateway span of a request: a child of a valid incoming `traceparent`, else the root
    /// of a new trace; sampled as the ``TraceSampler`` decides.
    /// - Parameter headBytes: the request head (`Host`'s value is read from it).
    /// - Returns: the trace, and the ``SpanHost`` of the request's `Host` when the span is recorded.
    func startTrace(_ request: RequestAdmission.Request, headBytes: ByteBuffer, sampler: TraceSampler) -> (ExchangeTrace, SpanHost?) {
        var high: UInt64
        var low: UInt64
        if let parent = request.traceParent {
            high = parent.traceIDHigh
            low = parent.traceIDLow
        } else {
            repeat {
                high = requestIDs.next()
                low = requestIDs.next()
            } while high == 0 && low == 0
        }
        var span = requestIDs.next()
        while span == 0 { span = requestIDs.next() }
        let sampled = sampler.shouldSample(parent: request.traceParent, traceIDLow: low)
        var host: SpanHost?
        if sampled, let range = request.host, let spans {
            host = headBytes.withUnsafeReadableBytes { spans.host(UnsafeRawBufferPointer(rebasing: $0[range])) }
        }
        return (
            ExchangeTrace(
                context: TraceParent(traceIDHigh: high, traceIDLow: low, spanID: span, flags: sampled ? 1 : 0), parentSpanID: request.traceParent?.spanID ?? 0),
            host
        )
    }

    /// Records the span of a finished exchange (when sampled) into the loop's buffer.
    /// - Parameter finished: when the exchange ended (uptime clock, as `exchange.started`).
    func recordSpan(_ exchange: Exchange, finished: NIODeadline) {
        guard let spans, let trace = exchange.trace, trace.sampled else { return }
        let start = spans.unixNanos(exchange.started)
        let end = spans.unixNanos(finished)
        spans.template(of: exchange, instance: exchange.target?.spanInstance)._withUnsafeGuaranteedRef { template in
            spans.chunk.append(
                context: trace.context, parentSpanID: trace.parentSpanID, startUnixNanos: start, endUnixNanos: end, template: template,
                path: exchange.path, status: exchange.status, outcome: exchange.outcome, retries: exchange.attempts - 1
            )
        }
        spans.appended()
    }
}
