import Atomics
import TapperCore

/// HTTP/2 counts for `/_tapper/status` (`gateway.http2`), shared by every I/O thread. Only
/// HTTP/2 work touches them (once per connection or stream, never per HTTP/1.1 request).
final class H2Counters: Sendable {
    /// Client connections speaking HTTP/2 now.
    let connections = ManagedAtomic<Int>(0)
    /// Request streams clients opened.
    let streams = ManagedAtomic<Int>(0)
    /// RST_STREAM frames clients sent.
    let clientResets = ManagedAtomic<Int>(0)
    /// Connections ended with GOAWAY ENHANCE_YOUR_CALM for resetting too many streams.
    let rapidResetGoaways = ManagedAtomic<Int>(0)
    /// h2c connections to instances open now.
    let upstreamSessions = ManagedAtomic<Int>(0)
    /// Streams sent to h2c instances.
    let upstreamStreams = ManagedAtomic<Int>(0)

    /// The counts as `/_tapper/status` shows them.
    func status(enabled: Bool, maxConcurrentStreams: Int) -> StatusReport.HTTP2 {
        StatusReport.HTTP2(
            enabled: enabled, maxConcurrentStreams: maxConcurrentStreams,
            connections: connections.load(ordering: .relaxed), streams: streams.load(ordering: .relaxed),
            clientResets: clientResets.load(ordering: .relaxed), rapidResetGoaways: rapidResetGoaways.load(ordering: .relaxed),
            upstreamSessions: upstreamSessions.load(ordering: .relaxed), upstreamStreams: upstreamStreams.load(ordering: .relaxed))
    }

    @inline(__always)
    func add(_ counter: ManagedAtomic<Int>, _ n: Int = 1) { counter.wrappingIncrement(by: n, ordering: .relaxed) }
}
