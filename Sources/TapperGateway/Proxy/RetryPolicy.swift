/// When a failed upstream attempt is tried again (DESIGN.md, Proxying): a request that never
/// reached an instance may go to another one whatever its method; a request whose connection
/// failed before any response byte is sent again only when that cannot do harm: it is
/// idempotent, or it went out on a reused keep-alive connection (which the instance may have
/// closed just before) without any body byte. Nothing is retried once its body is no longer
/// fully kept (see ``Exchange/canReplay``).
///
/// Pure: the caller says what happened and applies the decision.
struct RetryPolicy: Hashable, Sendable {
    /// Attempts per request, the first included.
    var maxAttempts: Int

    /// How an attempt failed.
    enum Failure: Hashable, Sendable {
        /// The connection could not be made (refused, unreachable, or timed out).
        case connectFailed(timedOut: Bool)
        /// The connection closed (or the response could not be framed) before any response byte.
        case closedBeforeResponse(freshConnection: Bool)
    }

    /// What is known about the request when an attempt failed.
    struct Request: Hashable, Sendable {
        var attempts: Int
        var idempotent: Bool
        var canReplay: Bool
        var bodyBytesSent: Int64
    }

    enum Decision: Hashable, Sendable {
        /// Try another instance; `sameInstanceLast`: the failed instance may get one more try,
        /// on a fresh connection, once no other instance is left.
        case retry(sameInstanceLast: Bool)
        /// Answer the client with an error.
        case fail
    }

    func decide(after failure: Failure, _ request: Request) -> Decision {
        guard request.canReplay, request.attempts < maxAttempts else { return .fail }
        switch failure {
        case .connectFailed:
            return .retry(sameInstanceLast: false)
        case .closedBeforeResponse(let fresh):
            // A reused connection the instance had already closed is the classic keep-alive
            // race: its request never reached the application if no byte of a body went out.
            guard request.idempotent || (!fresh && request.bodyBytesSent == 0) else { return .fail }
            return .retry(sameInstanceLast: !fresh)
        }
    }

    /// RFC 9110 idempotent methods.
    static func isIdempotent(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE": return true
        default: return false
        }
    }
}
