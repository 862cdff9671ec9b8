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
        return String(unsafeUninitializedCapacity: 32) { buf in
            let out = UnsafeMutableRawPointer(buf.baseAddress!)
            TraceParent.writeHex(a, to: out)
            TraceParent.writeHex(b, to: out + 16)
            return 32
        }
    }
}
