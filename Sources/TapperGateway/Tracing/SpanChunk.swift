import NIOCore
import TapperCore

/// Finished gateway spans as an I/O thread records them: each one already encoded as the OTLP
/// protobuf `ScopeSpans.spans` field it is in the export request (``SpanWriter``), one after
/// another in one buffer. The exporter's request is a short prefix and the chunks' buffers as
/// they are (written out with them, not copied), so no span costs anything more once recorded,
/// and a chunk holds no reference to the route, instance or `Host` its spans name.
///
/// Built by one owner, then handed over and only read: the pieces of a split share the bytes.
public struct SpanChunk: Sendable {
    private var storage: SpanBytes
    /// The spans of `storage` that are this chunk's (the pieces of a split share the storage).
    private var spans: Range<Int>

    /// - Parameter capacity: spans to make room for.
    init(capacity: Int = 0) {
        storage = SpanBytes(spans: capacity, bytes: capacity * 320)
        spans = 0..<0
    }

    public var count: Int { spans.count }
    public var isEmpty: Bool { spans.isEmpty }
    /// The encoded spans' bytes.
    var encodedCount: Int { storage.byteRange(of: spans).count }

    /// The encoded spans, sharing the chunk's storage (``seal()``ed).
    var buffer: ByteBuffer { storage.slice(storage.byteRange(of: spans)) }

    /// Makes the spans written so far readable through ``buffer``: done once the chunk is
    /// complete, by its owner, before it hands the chunk over.
    func seal() { storage.seal() }

    /// Records a span: encodes it at the end of the chunk, the short way when it can
    /// (``SpanWriter``). The template is the span's route's, `Host`'s and instance's.
    /// - Parameters:
    ///   - failed: the exchange did not end well (its outcome is not `ok`).
    ///   - outcome: read only when the span is written the long way (copying the exchange's
    ///     outcome string for every span retained and released it).
    @inline(__always)
    mutating func append(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, template: SpanTemplate, path: String,
        status: Int, failed: Bool, outcome: @autoclosure () -> String, retries: Int
    ) {
        ownStorage()
        if SpanWriter.fits(status: status, failed: failed) {
            let written: Void? = path.utf8.withContiguousStorageIfAvailable { path in
                let start = storage.reserve(3 + template.count + path.count + SpanWriter.shortOverhead)
                storage.commit(
                    SpanWriter.writeSpan(
                        template, context: context, parentSpanID: parentSpanID, startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos,
                        status: status, path: UnsafeRawBufferPointer(path), retries: retries, at: start))
            }
            if written != nil {
                spans = 0..<spans.upperBound + 1
                return
            }
        }
        appendTheLongWay(
            context: context, parentSpanID: parentSpanID, startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos, template: template, path: path,
            status: status, failed: failed, outcome: outcome(), retries: retries)
    }

    /// Records a span field by field (what ``append`` does when the short way does not fit;
    /// tests call it to compare the two).
    @inline(never)
    mutating func appendTheLongWay(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, template: SpanTemplate, path: String,
        status: Int, failed: Bool, outcome: String, retries: Int
    ) {
        ownStorage()
        // The template holds the route's, `Host`'s and instance's fields (and a few bytes more).
        let start = storage.reserve(SpanWriter.spanOverhead + template.count + path.utf8.count + (failed ? 2 * outcome.utf8.count : 0))
        storage.commit(
            SpanWriter.writeSpan(
                context: context, parentSpanID: parentSpanID, startUnixNanos: startUnixNanos, endUnixNanos: endUnixNanos, route: template.route,
                host: template.host, instance: template.instance, path: path, status: status, failed: failed, outcome: outcome, retries: retries,
                at: start))
        spans = 0..<spans.upperBound + 1
    }

    /// Makes the storage this chunk's alone, holding only its spans, before it is written to
    /// (a copy or a piece of a split shares it).
    @inline(__always)
    private mutating func ownStorage() {
        if !isKnownUniquelyReferenced(&storage) || spans.lowerBound != 0 || spans.upperBound != storage.spanCount {
            storage = storage.copy(spans)
            spans = 0..<spans.count
        }
    }

    /// The first `n` spans and the rest, as two chunks (sharing the bytes).
    public func split(at n: Int) -> (SpanChunk, SpanChunk) {
        let cut = spans.lowerBound + min(max(n, 0), spans.count)
        var first = self
        var rest = self
        first.spans = spans.lowerBound..<cut
        rest.spans = cut..<spans.upperBound
        return (first, rest)
    }
}

/// A chunk's bytes, in a ByteBuffer's storage written through a pointer (so that the exporter
/// sends them without a copy), and where each span ends. Written by one owner, read-only once
/// sealed and handed over.
final class SpanBytes: @unchecked Sendable {
    private var storage: ByteBuffer
    /// The storage's first byte, while it is this object's alone (it is replaced when it grows).
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    /// Span `i` ends at byte `ends[i]`.
    private var ends: UnsafeMutablePointer<UInt32>
    private(set) var spanCount = 0
    private var spanCapacity: Int

    init(spans: Int, bytes: Int) {
        storage = ByteBufferAllocator().buffer(capacity: max(bytes, 256))
        (base, capacity) = Self.region(&storage)
        spanCapacity = max(spans, 4)
        ends = .allocate(capacity: spanCapacity)
    }

    deinit { ends.deallocate() }

    private static func region(_ buffer: inout ByteBuffer) -> (UnsafeMutablePointer<UInt8>, Int) {
        buffer.withVeryUnsafeMutableBytes { ($0.baseAddress!.assumingMemoryBound(to: UInt8.self), $0.count) }
    }

    /// Where the bytes of `spans` are.
    func byteRange(of spans: Range<Int>) -> Range<Int> {
        guard !spans.isEmpty else { return 0..<0 }
        let start = spans.lowerBound == 0 ? 0 : Int(ends[spans.lowerBound - 1])
        return start..<Int(ends[spans.upperBound - 1])
    }

    /// A buffer of its own holding only `spans`.
    func copy(_ spans: Range<Int>) -> SpanBytes {
        let range = byteRange(of: spans)
        let c = SpanBytes(spans: max(spanCapacity, spans.count), bytes: max(capacity, range.count))
        c.base.update(from: base + range.lowerBound, count: range.count)
        c.count = range.count
        for (i, s) in spans.enumerated() { c.ends[i] = ends[s] - UInt32(range.lowerBound) }
        c.spanCount = spans.count
        return c
    }

    /// Room for `bytes` more at the end, and for one more span: where to write them.
    @inline(__always) func reserve(_ bytes: Int) -> UnsafeMutablePointer<UInt8> {
        if count + bytes > capacity || spanCount == spanCapacity { grow(bytes) }
        return base + count
    }

    /// A span was written from the end up to `end`.
    @inline(__always) func commit(_ end: UnsafeMutablePointer<UInt8>) {
        count = base.distance(to: end)
        precondition(count <= capacity, "a span overran its bound")
        ends[spanCount] = UInt32(truncatingIfNeeded: count)
        spanCount += 1
    }

    @inline(never) private func grow(_ bytes: Int) {
        if count + bytes > capacity {
            storage.moveWriterIndex(to: count)
            storage.reserveCapacity(minimumWritableBytes: max(bytes, capacity))
            (base, capacity) = Self.region(&storage)
        }
        if spanCount == spanCapacity {
            let more = UnsafeMutablePointer<UInt32>.allocate(capacity: spanCapacity * 2)
            more.update(from: ends, count: spanCount)
            ends.deallocate()
            ends = more
            spanCapacity *= 2
        }
    }

    /// The bytes written become the storage's readable bytes.
    func seal() {
        if storage.writerIndex != count { storage.moveWriterIndex(to: count) }
    }

    /// `range` of the bytes (sealed), sharing the storage.
    func slice(_ range: Range<Int>) -> ByteBuffer {
        precondition(range.upperBound <= storage.writerIndex, "spans read before the chunk was sealed")
        return storage.getSlice(at: range.lowerBound, length: range.count)!
    }
}

extension SpanChunk: SpanBatchChunk {}

extension OTLPProtobufEncoder {
    /// The export request of `chunks`' spans (sealed), as the buffers to write one after
    /// another: its prefix and the chunks' own bytes.
    func request(_ chunks: [SpanChunk]) -> [ByteBuffer] {
        let spans = chunks.reduce(0) { $0 + $1.encodedCount }
        var parts = [ByteBuffer(bytes: requestPrefix(spansByteCount: spans))]
        parts.reserveCapacity(chunks.count + 1)
        for chunk in chunks where !chunk.isEmpty { parts.append(chunk.buffer) }
        return parts
    }

    /// The same request in one buffer.
    func encode(_ chunks: [SpanChunk]) -> ByteBuffer {
        let parts = request(chunks)
        var body = ByteBuffer()
        body.reserveCapacity(parts.reduce(0) { $0 + $1.readableBytes })
        for part in parts { body.writeImmutableBuffer(part) }
        return body
    }
}
