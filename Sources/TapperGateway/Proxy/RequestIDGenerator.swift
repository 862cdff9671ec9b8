import TapperCore

/// Fast, unique-enough request ids: a per-event-loop xorshift generator seeded from the
/// system's random source (no syscall per request).
struct RequestIDGenerator {
    var state: (UInt64, UInt64)

    init() {
        var rng = SystemRandomNumberGenerator()
        state = (rng.next() | 1, rng.next() | 1)
    }

    mutating func next() -> UInt64 {
        var s1 = state.0
        let s0 = state.1
        state.0 = s0
        s1 ^= s1 << 23
        state.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26)
        return state.1 &+ s0
    }

    /// 32 lowercase hex digits (eight at a time, as `traceparent`'s ids are written; a digit at
    /// a time from a table was ~160 instructions per request).
    mutating func make() -> String {
        let a = next()
        let b = next()
        return Self.string(a, b)
    }

    /// A new trace id's halves (never both zero, which `traceparent` forbids).
    mutating func traceID() -> (high: UInt64, low: UInt64) {
        var high: UInt64
        var low: UInt64
        repeat {
            high = next()
            low = next()
        } while high == 0 && low == 0
        return (high, low)
    }

    /// The request id spelling the 128-bit value `high`, `low`: its 32 hex digits, as a
    /// `traceparent`'s trace id is written.
    static func string(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buf in
            let out = UnsafeMutableRawPointer(buf.baseAddress!)
            TraceParent.writeHex(high, to: out)
            TraceParent.writeHex(low, to: out + 16)
            return 32
        }
    }
}
