import HTTPTypes

/// The bounds of a blocking query (`GET /v1/catalog?index=N&wait=D`), as Consul sets them.
///
/// `wait` defaults to ``RegistryServer/Configuration/defaultWait`` and is cut to
/// ``RegistryServer/Configuration/maxWait``; then up to a sixteenth of it is added at random
/// (Consul's jitter), so gateways that started together spread their re-polls out.
enum BlockingWait {
    /// The wait to use before jitter: the requested one (or the default), cut to `max`.
    /// - Throws: ``APIError`` (400 naming `wait`) when `wait` is not a duration.
    static func parse(wait raw: String?, default defaultWait: Duration, max maxWait: Duration) throws -> Duration {
        guard let raw else { return min(defaultWait, maxWait) }
        guard let parsed = DurationParser.parse(raw) else {
            throw APIError(.badRequest, code: "invalid", message: "wait: must be a duration like 500ms, 30s or 5m", field: "wait")
        }
        return min(parsed, maxWait)
    }

    /// A change index: decimal digits only (no sign), at most `UInt64.max`.
    static func parseIndex(_ raw: String) -> UInt64? {
        guard !raw.isEmpty, raw.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return UInt64(raw)
    }

    /// `wait` plus a random jitter in `0...wait/16`.
    static func jittered<R: RandomNumberGenerator>(_ wait: Duration, using rng: inout R) -> Duration {
        let ms = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000
        guard ms >= 16 else { return wait }
        return wait + .milliseconds(Int64.random(in: 0...(ms / 16), using: &rng))
    }

    static func jittered(_ wait: Duration) -> Duration {
        var rng = SystemRandomNumberGenerator()
        return jittered(wait, using: &rng)
    }
}
