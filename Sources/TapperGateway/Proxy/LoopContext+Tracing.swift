import NIOCore
import TapperCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Tracing on the I/O thread: starting a request's span (ids from the loop's generator) and
/// recording it when the request is over. Only called when `--otlp-endpoint` is set.
extension LoopContext {
    /// The gateway span of a request: a child of a valid incoming `traceparent`, else the root
    /// of a new trace; sampled as the ``TraceSampler`` decides.
    func startTrace(_ request: RequestAdmission.Request, sampler: TraceSampler) -> ExchangeTrace {
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
        return ExchangeTrace(
            context: TraceParent(traceIDHigh: high, traceIDLow: low, spanID: span, flags: sampled ? 1 : 0), parentSpanID: request.traceParent?.spanID ?? 0,
            host: request.host
        )
    }

    /// Records the span of a finished exchange (when sampled) into the loop's buffer.
    /// - Parameter nanos: how long the exchange took.
    func recordSpan(_ exchange: Exchange, trace: ExchangeTrace, nanos: Int64) {
        guard trace.sampled, let spans else { return }
        let end = WallClock.nanoseconds()
        let target = exchange.target
        spans.append(
            SpanRecord(
                context: trace.context, parentSpanID: trace.parentSpanID, startUnixNanos: end &- UInt64(max(0, nanos)), endUnixNanos: end,
                method: exchange.method, routeTemplate: exchange.route.routeTemplate, path: exchange.path, host: trace.host, service: exchange.service,
                instanceID: target?.instanceID, instanceURL: target?.url, status: exchange.status, outcome: exchange.outcome,
                retries: max(0, exchange.attempts - 1)
            )
        )
    }
}
