/// A store that adds up request counters across gateways (Redis, etcd): what a shared rate
/// limit needs from it. Counters live per window and expire by themselves.
public protocol SharedCounterStore: Sendable {
    /// Adds this gateway's `deltas` (counter name → requests since the last call, 0 to only read)
    /// to the counters and returns each counter's total over every gateway.
    /// - Parameters:
    ///   - expiresAfter: how long a counter must outlive its last change.
    func add(_ deltas: [String: Int], expiresAfter: Duration) async throws -> [String: Int]
    /// For logs and the status (`redis://127.0.0.1:6379`).
    var displayName: String { get }
}

/// One key's count in a rate limit shared by several gateways (pure: the caller passes
/// wall-clock nanoseconds, which all gateways agree on, and does the syncing).
///
/// The limit is kept over a sliding window estimated from two fixed ones, as Cloudflare and
/// Kong's cluster policy do: `previous × (1 − elapsed share of the current window) + current`.
/// `current` is what every gateway had counted at the last sync plus this gateway's requests
/// since then, so the gateways together stay within the limit up to what they admit between
/// two syncs.
public struct SharedWindow: Hashable, Sendable {
    /// Index of the current fixed window (wall time / window length).
    public private(set) var window: UInt64
    /// Every gateway's requests in the window before, as last known.
    public private(set) var previousTotal: Int
    /// Every gateway's requests in this window, as of the last sync (ours included).
    public private(set) var currentTotal: Int
    /// This gateway's requests in this window not yet added to the store.
    public private(set) var pending: Int

    public init(limit: RateLimit, now: UInt64) {
        window = now / limit.windowNanos
        previousTotal = 0
        currentTotal = 0
        pending = 0
    }

    /// Admits one request at `now` if the estimate stays within the limit.
    public mutating func take(_ limit: RateLimit, now: UInt64) -> TokenBucket.Decision {
        roll(limit, now: now)
        let elapsed = Double(now % limit.windowNanos) / Double(limit.windowNanos)
        let used = Double(previousTotal) * (1 - elapsed) + Double(currentTotal + pending)
        let allowed = used + 1 <= Double(limit.requests)
        if allowed { pending += 1 }
        let remaining = max(0, Int((Double(limit.requests) - used - (allowed ? 1 : 0)).rounded(.down)))
        let toWindowEnd = Double(limit.windowNanos - now % limit.windowNanos) / 1e9
        var retry = 0
        if !allowed {
            let room = Double(limit.requests - 1 - currentTotal - pending)
            if room >= 0, previousTotal > 0 {
                // The previous window's share fades; wait until it has faded enough.
                let needed = 1 - room / Double(previousTotal)
                // (less a nanosecond of rounding error, which would add a whole second)
                retry = max(1, Int(((needed - elapsed) * Double(limit.windowNanos) / 1e9 - 1e-9).rounded(.up)))
            } else {
                retry = max(1, Int(toWindowEnd.rounded(.up)))
            }
        }
        return TokenBucket.Decision(allowed: allowed, remaining: remaining, retryAfterSeconds: retry, resetSeconds: max(1, Int(toWindowEnd.rounded(.up))))
    }

    /// What to add to the store for this key now: the window and the requests not yet added
    /// (marked as sent; ``synced(window:total:)`` records the answer).
    public mutating func drain(_ limit: RateLimit, now: UInt64) -> (window: UInt64, delta: Int) {
        roll(limit, now: now)
        let delta = pending
        currentTotal += delta
        pending = 0
        return (window, delta)
    }

    /// Records every gateway's total for `window` (ignored when the window has moved on).
    public mutating func synced(window: UInt64, total: Int) {
        guard window == self.window else {
            if window + 1 == self.window { previousTotal = max(previousTotal, total) }
            return
        }
        currentTotal = max(currentTotal, total)
    }

    /// Whether the key can be forgotten at `now`: nothing counted in this or the last window.
    public func isIdle(_ limit: RateLimit, now: UInt64) -> Bool {
        let w = now / limit.windowNanos
        if w >= window + 2 { return true }
        if w == window + 1 { return currentTotal + pending == 0 }
        return previousTotal + currentTotal + pending == 0
    }

    private mutating func roll(_ limit: RateLimit, now: UInt64) {
        let w = now / limit.windowNanos
        guard w > window else { return }
        // Requests admitted but not yet synced when the window ended count here only.
        previousTotal = w == window + 1 ? currentTotal + pending : 0
        currentTotal = 0
        pending = 0
        window = w
    }
}
