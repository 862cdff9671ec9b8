/// A request rate limit: `requests` per `window` (`100/s`, `6000/m`), as a token bucket that
/// holds at most `requests` tokens (the burst) and refills `requests` per window.
public struct RateLimit: Hashable, Sendable, CustomStringConvertible {
    public var requests: Int
    /// The window in nanoseconds (1 s, 1 min or 1 h).
    public var windowNanos: UInt64

    public init(requests: Int, windowNanos: UInt64) {
        self.requests = requests
        self.windowNanos = windowNanos
    }

    /// Parses `N/s`, `N/m` or `N/h` (also `N/second`, `N/minute`, `N/hour`).
    public init(parsing text: String) throws(FieldError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        // Digits only, no leading zero, at most 9 of them (the registry's documented pattern).
        guard parts.count == 2, (1...9).contains(parts[0].utf8.count), parts[0].utf8.first != UInt8(ascii: "0"),
            parts[0].utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let n = Int(parts[0])
        else {
            throw FieldError(field: "rate-limit", message: "'\(Names.printable(text))' must look like 100/s, 6000/m or 50000/h")
        }
        let window: UInt64
        switch parts[1].lowercased() {
        case "s", "sec", "second": window = 1_000_000_000
        case "m", "min", "minute": window = 60_000_000_000
        case "h", "hour": window = 3_600_000_000_000
        default: throw FieldError(field: "rate-limit", message: "'\(Names.printable(text))': the window must be s, m or h")
        }
        self.init(requests: n, windowNanos: window)
    }

    /// Parses like ``init(parsing:)``, naming `field` in the error.
    public init(parsing text: String, field: String) throws(FieldError) {
        do {
            try self.init(parsing: text)
        } catch {
            throw FieldError(field: field, message: error.message)
        }
    }

    /// The window in whole seconds (for the `RateLimit-Policy` header's `w`).
    public var windowSeconds: Int { Int(windowNanos / 1_000_000_000) }

    public var description: String {
        "\(requests)/\(windowNanos == 1_000_000_000 ? "s" : windowNanos == 60_000_000_000 ? "m" : "h")"
    }

    /// The stricter of two limits (the lower rate; at the same rate, the smaller burst).
    public static func stricter(_ a: RateLimit?, _ b: RateLimit?) -> RateLimit? {
        guard let a else { return b }
        guard let b else { return a }
        if a.nanosPerToken != b.nanosPerToken { return a.nanosPerToken > b.nanosPerToken ? a : b }
        return a.requests <= b.requests ? a : b
    }

    /// Nanoseconds for one token to come back.
    var nanosPerToken: Double { Double(windowNanos) / Double(requests) }
}

/// One key's bucket (pure: the caller passes the monotonic time in nanoseconds).
public struct TokenBucket: Hashable, Sendable {
    public private(set) var tokens: Double
    public private(set) var updated: UInt64

    /// A bucket starts full.
    public init(limit: RateLimit, now: UInt64) {
        tokens = Double(limit.requests)
        updated = now
    }

    public struct Decision: Hashable, Sendable {
        public var allowed: Bool
        /// Whole tokens left after this request.
        public var remaining: Int
        /// Seconds (rounded up, at least 1 when refused) until a request would be allowed.
        public var retryAfterSeconds: Int
        /// Seconds (rounded up) until the bucket is full again.
        public var resetSeconds: Int
        /// Refused because a shared limit's store is down and the limit fails closed (→ 503).
        public var storeUnavailable: Bool

        public init(allowed: Bool, remaining: Int, retryAfterSeconds: Int, resetSeconds: Int, storeUnavailable: Bool = false) {
            self.allowed = allowed
            self.remaining = remaining
            self.retryAfterSeconds = retryAfterSeconds
            self.resetSeconds = resetSeconds
            self.storeUnavailable = storeUnavailable
        }
    }

    /// Takes a token for one request at `now` if there is one.
    public mutating func take(_ limit: RateLimit, now: UInt64) -> Decision {
        refill(limit, now: now)
        let allowed = tokens >= 1
        if allowed { tokens -= 1 }
        let perToken = limit.nanosPerToken
        let missing = Double(limit.requests) - tokens
        let reset = Int((missing * perToken / 1e9).rounded(.up))
        let retry = allowed ? 0 : max(1, Int(((1 - tokens) * perToken / 1e9).rounded(.up)))
        return Decision(allowed: allowed, remaining: Int(tokens), retryAfterSeconds: retry, resetSeconds: reset)
    }

    /// Whether the bucket is full at `now` (a full bucket is the same as none: it can be dropped).
    public func isFull(_ limit: RateLimit, now: UInt64) -> Bool {
        var copy = self
        copy.refill(limit, now: now)
        return copy.tokens >= Double(limit.requests)
    }

    private mutating func refill(_ limit: RateLimit, now: UInt64) {
        guard now > updated else { return }
        tokens = min(Double(limit.requests), tokens + Double(now - updated) / limit.nanosPerToken)
        updated = now
    }
}
