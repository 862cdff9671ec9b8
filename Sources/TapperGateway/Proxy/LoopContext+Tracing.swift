import NIOCore
import TapperCore

/// Tracing on the I/O thread: starting a request's span (ids from the loop's generator) and
/// recording it when the request is over. Only called when `--otlp-endpoint` is set.
extension LoopContext {
    /// The gateway span of a request: a child of a valid incoming `traceparent`, else the root
    /// of a new trace; sampled as the ``TraceSampler`` decides.
    /// - Parameter headBytes: the request head (`Host`'s value is read from it).
    func startTrace(_ request: RequestAdmission.Request, headBytes: ByteBuffer, sampler: TraceSampler) -> ExchangeTrace {
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
        return ExchangeTrace(
            context: TraceParent(traceIDHigh: high, traceIDLow: low, spanID: span, flags: sampled ? 1 : 0), parentSpanID: request.traceParent?.spanID ?? 0,
            host: host
        )
    }

    /// Records the span of a finished exchange (when sampled) into the loop's buffer.
    /// - Parameter finished: when the exchange ended (uptime clock, as `exchange.started`).
    func recordSpan(_ exchange: Exchange, finished: NIODeadline) {
        // Read in place: a copy of the trace would retain its host once more.
        guard let spans, exchange.trace?.sampled == true else { return }
        let route = exchange.route
        let spanRoute = spans.route(
            entry: route.entryIndex, generation: exchange.snapshotGeneration, method: exchange.method, template: route.routeTemplate, service: route.service)
        spans.records.append(
            SpanRecord(
                context: exchange.trace.unsafelyUnwrapped.context, parentSpanID: exchange.trace.unsafelyUnwrapped.parentSpanID,
                startUnixNanos: spans.unixNanos(exchange.started), endUnixNanos: spans.unixNanos(finished), route: spanRoute,
                host: exchange.trace.unsafelyUnwrapped.host, instance: exchange.target?.spanInstance, path: exchange.path, status: exchange.status,
                outcome: exchange.outcome, retries: exchange.attempts - 1
            )
        )
        spans.appended()
    }
}
