import Foundation
import TapperCore
import Testing

@Suite struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func parsesTheSpecExample() throws {
        let p = try #require(TraceParent(parsing: Self.valid))
        #expect(p.traceIDHigh == 0x4bf9_2f35_77b3_4da6)
        #expect(p.traceIDLow == 0xa3ce_929d_0e0e_4736)
        #expect(p.spanID == 0x00f0_67aa_0ba9_02b7)
        #expect(p.flags == 1 && p.sampled)
        #expect(p.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(p.spanIDHex == "00f067aa0ba902b7")
        #expect(p.headerValue == Self.valid)
        #expect(TraceParent(parsing: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")?.sampled == false)
    }

    @Test func formatsWhatItParses() throws {
        let p = TraceParent(traceIDHigh: 1, traceIDLow: .max, spanID: 0xabc, flags: 0x03)
        #expect(p.headerValue == "00-0000000000000001ffffffffffffffff-0000000000000abc-03")
        #expect(TraceParent(parsing: p.headerValue) == p)
    }

    @Test func refusesWhatTheW3CRulesRefuse() {
        let bad = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",  // version 00 is exactly 55 bytes
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero parent id
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // separator
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later version's extra needs a '-'
        ]
        for value in bad { #expect(TraceParent(parsing: value) == nil, "\(value)") }
    }

    @Test func acceptsLaterVersionsWithExtraFields() {
        let p = TraceParent(parsing: "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
        #expect(p?.spanID == 0x00f0_67aa_0ba9_02b7)
        #expect(TraceParent(parsing: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") != nil)
    }
}

@Suite struct TraceSamplerTests {
    static let sampledParent = TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 1)
    static let unsampledParent = TraceParent(traceIDHigh: 1, traceIDLow: 2, spanID: 3, flags: 0)

    @Test func followsTheParent() {
        for rate in [0.0, 0.5, 1.0] {
            let s = TraceSampler(rate: rate)
            #expect(s.shouldSample(parent: Self.sampledParent, traceIDLow: .max))
            #expect(!s.shouldSample(parent: Self.unsampledParent, traceIDLow: 0))
        }
    }

    @Test func samplesNewTracesByTraceIDRatio() {
        #expect(TraceSampler(rate: 1).shouldSample(parent: nil, traceIDLow: .max))
        #expect(!TraceSampler(rate: 0).shouldSample(parent: nil, traceIDLow: 0))
        let half = TraceSampler(rate: 0.5)
        #expect(half.shouldSample(parent: nil, traceIDLow: 1 << 63 - 1))
        #expect(!half.shouldSample(parent: nil, traceIDLow: 1 << 63))
        // Over evenly spread ids the share is the rate.
        var rng = SystemRandomNumberGenerator()
        let quarter = TraceSampler(rate: 0.25)
        let n = 40_000
        let hits = (0..<n).filter { _ in quarter.shouldSample(parent: nil, traceIDLow: rng.next()) }.count
        #expect(abs(Double(hits) / Double(n) - 0.25) < 0.02)
        #expect(TraceSampler(rate: 7).rate == 1 && TraceSampler(rate: -1).rate == 0)
    }
}

@Suite struct SpanBatcherTests {
    typealias Batcher = SpanBatcher<[Int]>
    static let settings = Batcher.Settings(maxQueue: 10, maxBatch: 4, delayNanos: 1000)

    /// A batch's spans in order (it comes as chunks).
    static func spans(_ batch: [[Int]]?) -> [Int]? { batch.map { $0.flatMap { $0 } } }

    @Test func fullBatchIsDueAtOnceAndWakesTheExporter() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer([1, 2, 3], now: 0) == .init(accepted: 3, dropped: 0, batchReady: false))
        #expect(b.takeBatch(now: 10) == nil)
        #expect(b.offer([4], now: 10) == .init(accepted: 1, dropped: 0, batchReady: true))
        #expect(Self.spans(b.takeBatch(now: 10)) == [1, 2, 3, 4])
        #expect(b.count == 0 && b.nextDeadline == nil)
    }

    @Test func partialBatchWaitsForTheDelay() {
        var b = Batcher(settings: Self.settings)
        _ = b.offer([1], now: 100)
        _ = b.offer([2], now: 500)
        #expect(b.nextDeadline == 1100)
        #expect(b.takeBatch(now: 1099) == nil)
        #expect(Self.spans(b.takeBatch(now: 1100)) == [1, 2])
        _ = b.offer([3], now: 2000)
        #expect(Self.spans(b.takeBatch(now: 2000, flushing: true)) == [3])
    }

    @Test func dropsAndCountsWhatDoesNotFit() {
        var b = Batcher(settings: Self.settings)
        #expect(b.offer(Array(0..<8), now: 0).dropped == 0)
        #expect(b.offer(Array(8..<13), now: 1) == .init(accepted: 2, dropped: 3, batchReady: false))
        #expect(b.dropped == 3 && b.count == 10)
        // A chunk larger than a batch is split; the rest is the next batch.
        #expect(Self.spans(b.takeBatch(now: 1)) == [0, 1, 2, 3])
        #expect(Self.spans(b.takeBatch(now: 1)) == [4, 5, 6, 7])
        // Two left: a partial batch, due one delay after the last export.
        #expect(b.takeBatch(now: 2) == nil)
        #expect(Self.spans(b.takeBatch(now: 1001)) == [8, 9])
    }

    @Test func batchesAreWholeChunksUpToTheLimit() {
        var b = Batcher(settings: Self.settings)
        _ = b.offer([1, 2, 3], now: 0)
        _ = b.offer([4, 5], now: 0)
        _ = b.offer([6], now: 0)
        // [1, 2, 3] and [4, 5] make 5 > 4: the second chunk waits, whole, for the next batch.
        #expect(b.takeBatch(now: 0) == [[1, 2, 3]])
        #expect(b.count == 3)
        #expect(b.takeBatch(now: 0, flushing: true) == [[4, 5], [6]])
    }
}

@Suite struct SpanFieldsTests {
    @Test func splitsHosts() {
        #expect(SpanHost.split("example.com") == ("example.com", nil))
        #expect(SpanHost.split("example.com:8080") == ("example.com", 8080))
        #expect(SpanHost.split("[::1]:8000") == ("::1", 8000))
        #expect(SpanHost.split("[::1]") == ("::1", nil))
        let h = SpanHost("example.com:8080")
        #expect(Array("example.com:8080".utf8).withUnsafeBytes { h.matches($0) })
        #expect(!Array("example.com:8081".utf8).withUnsafeBytes { h.matches($0) })
        #expect(!Array("example.com:808".utf8).withUnsafeBytes { h.matches($0) })
        #expect(SpanHost("").matches(UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    /// `matches` compares two words for values of 8 to 16 bytes, bytes otherwise: for every
    /// length from 0 to 40, the value matches itself and no value one byte longer, shorter or
    /// different at any position (first, middle, last word and the bytes in between).
    @Test func matchesExactlyItsOwnBytesAtEveryLength() {
        for n in 0...40 {
            let value = String((0..<n).map { Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8($0 % 26))) })
            let host = SpanHost(value)
            let bytes = Array(value.utf8)
            #expect(bytes.withUnsafeBytes { host.matches($0) }, "length \(n)")
            #expect(!(bytes + [UInt8(ascii: "x")]).withUnsafeBytes { host.matches($0) }, "length \(n) + 1")
            if n > 0 { #expect(!Array(bytes.dropLast()).withUnsafeBytes { host.matches($0) }, "length \(n) - 1") }
            for i in 0..<n {
                var changed = bytes
                changed[i] = UInt8(ascii: "Z")
                #expect(!changed.withUnsafeBytes { host.matches($0) }, "length \(n), byte \(i) changed")
            }
        }
    }

    /// The copying form (request id = trace id) writes what the digit-by-digit form writes,
    /// with the span id copied (root spans: span id = the trace id's low half) or written.
    @Test func copyingTheTraceIDHexWritesTheSameValue() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let high = rng.next() as UInt64
            let low = rng.next() as UInt64
            let hex = TraceParent.hex(high) + TraceParent.hex(low)
            for (span, flags) in [(low, UInt8(1)), (rng.next() as UInt64, UInt8(0)), (low, UInt8(0xab))] {
                let tp = TraceParent(traceIDHigh: high, traceIDLow: low, spanID: span, flags: flags)
                var copied = [UInt8](repeating: 0, count: TraceParent.length)
                var hexCopy = hex
                hexCopy.withUTF8 { h in copied.withUnsafeMutableBytes { tp.write(to: $0.baseAddress!, traceIDHex: UnsafeRawPointer(h.baseAddress!)) } }
                #expect(String(decoding: copied, as: UTF8.self) == tp.headerValue)
            }
        }
    }

    @Test func writesHexEightDigitsAtATime() {
        for v: UInt64 in [0, 1, 0x0123_4567_89ab_cdef, .max, 0xa0b0_c0d0_e0f0_0a0b] {
            let digits = String(v, radix: 16)
            #expect(TraceParent.hex(v) == String(repeating: "0", count: 16 - digits.count) + digits)
        }
    }
}
