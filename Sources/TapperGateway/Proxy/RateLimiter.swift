import Synchronization
import TapperCore

/// The gateway-wide request rate limit (`--rate-limit 100/s`), one token bucket per key
/// (client IP by default, the authenticated subject, or a header), shared by every I/O
/// thread: a client's connections spread over threads still share one budget.
///
/// The buckets live in 64 stripes, each behind its own lock, so threads rarely wait for each
/// other; a stripe holds at most ``maxKeysPerStripe`` keys (full buckets, which are the same as
/// none, go first; then any), so a flood of distinct keys cannot grow memory without bound.
/// With ``shared`` set (`--rate-limit-store`) the budget is every gateway's together instead:
/// see ``SharedLimitCounters``.
final class RateLimiter: Sendable {
    enum Key: Hashable, Sendable, CustomStringConvertible {
        case clientIP
        /// The authenticated subject (`--auth`); the client IP for requests without one.
        case subject
        /// A request header's value (name lower-cased); the client IP when it is absent.
        case header(String)

        init(parsing text: String) throws(FieldError) {
            let lower = text.lowercased()
            if lower == "ip" { self = .clientIP; return }
            if lower == "subject" { self = .subject; return }
            if lower.hasPrefix("header:"), lower.count > 7, lower.utf8.dropFirst(7).allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) {
                self = .header(String(lower.dropFirst(7)))
                return
            }
            throw FieldError(field: "rate-limit-key", message: "'\(Names.printable(text))' must be ip, subject or header:NAME")
        }

        var description: String {
            switch self {
            case .clientIP: return "ip"
            case .subject: return "subject"
            case .header(let name): return "header:\(name)"
            }
        }
    }

    let limit: RateLimit
    let key: Key
    private let stripes: [Stripe]
    static let stripeCount = 64
    static let maxKeysPerStripe = 4096

    private final class Stripe: Sendable {
        let buckets = Mutex<[String: TokenBucket]>([:])
    }

    /// The counters shared with other gateways (nil: this gateway's own token buckets).
    let shared: SharedLimitCounters?

    /// - Parameters:
    ///   - scope: names the limit's counters in a shared store (with `sharing`).
    init(limit: RateLimit, key: Key = .clientIP, scope: String = "gateway", sharing: LimitSharing? = nil) {
        self.limit = limit
        self.key = key
        shared = sharing.map { SharedLimitCounters(scope: scope + " " + limit.description, limit: limit, sharing: $0) }
        stripes = sharing == nil ? (0..<Self.stripeCount).map { _ in Stripe() } : []
    }

    /// Takes a token for `key` at `now` (monotonic nanoseconds).
    func take(_ key: String, now: UInt64) -> TokenBucket.Decision {
        if let shared { return shared.take(key, uptime: now) }
        let limit = self.limit
        // FNV-1a over the key's bytes picks the stripe: cheaper than a second SipHash (the
        // dictionary hashes the key once more, for the one in-place lookup below).
        var h: UInt32 = 2_166_136_261
        for byte in key.utf8 { h = (h ^ UInt32(byte)) &* 16_777_619 }
        let stripe = stripes[Int(h % UInt32(Self.stripeCount))]
        return stripe.buckets.withLock { buckets in
            if buckets.count >= Self.maxKeysPerStripe, buckets[key] == nil {
                // Amortised: a scan frees many slots (full buckets, else an eighth of the stripe).
                buckets = buckets.filter { !$0.value.isFull(limit, now: now) }
                if buckets.count >= Self.maxKeysPerStripe {
                    for _ in 0..<(Self.maxKeysPerStripe / 8) { buckets.remove(at: buckets.startIndex) }
                }
            }
            return buckets[key, default: TokenBucket(limit: limit, now: now)].take(limit, now: now)
        }
    }

    /// Keys with a bucket right now (for tests and the status).
    var keyCount: Int { shared?.keyCount ?? stripes.reduce(0) { $0 + $1.buckets.withLock { $0.count } } }
}
