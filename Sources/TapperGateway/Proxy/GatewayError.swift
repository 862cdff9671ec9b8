import NIOHTTP1
import TapperCore

/// An answer the gateway gives itself instead of an upstream's: a status, a stable code (safe
/// as a metric label and for scripts), a message for people and any extra headers; rendered as
/// `{"error": {"code": "...", "message": "..."}}` (DESIGN.md, Routing).
///
/// Every gateway-generated error is a static member here, so the data path, its state machine
/// and the tests name them instead of repeating status, code and message literals.
struct GatewayError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A response header the error adds (`Allow`, `Retry-After`, `WWW-Authenticate`).
    struct Header: Hashable, Sendable {
        var name: String
        var value: String
    }

    var status: HTTPResponseStatus
    var code: String
    var message: String
    var headers: [Header] = []
    /// The upstream instance is to blame (passive health counts it as a failure).
    var blamesUpstream = false

    var description: String { "\(status.code) \(code): \(message)" }

    /// The JSON body.
    var body: String { Self.body(code: code, message: message) }

    // MARK: the request itself

    static func headersTooLarge(limit: Int) -> GatewayError {
        GatewayError(status: .requestHeaderFieldsTooLarge, code: "headers_too_large", message: "the request head is larger than \(limit) bytes")
    }

    /// The parser's head limit (headers plus target) was crossed before the head ended.
    static let headTooLarge = GatewayError(status: .requestHeaderFieldsTooLarge, code: "headers_too_large", message: "the request head is too large")

    static func uriTooLong(limit: Int) -> GatewayError {
        GatewayError(status: .uriTooLong, code: "uri_too_long", message: "the request target is longer than \(limit) bytes")
    }

    static let unsupportedTransferEncoding = GatewayError(
        status: .notImplemented, code: "unsupported_transfer_encoding", message: "only the chunked transfer coding is supported"
    )

    static func malformed(_ reason: String) -> GatewayError {
        GatewayError(status: .badRequest, code: "bad_request", message: "malformed HTTP request: \(reason)")
    }

    /// The answer to a head the parser refused.
    static func parsing(_ failure: HTTPHeadParser.Failure, limits: HTTPHeadParser.Limits) -> GatewayError {
        switch failure {
        case .headTooLarge: return .headTooLarge
        case .targetTooLong: return .uriTooLong(limit: limits.maxTargetBytes)
        case .unsupportedTransferEncoding: return .unsupportedTransferEncoding
        case .malformed(let reason): return .malformed(reason)
        case .incomplete: return .malformed("incomplete head")
        }
    }

    static let malformedChunkedBody = GatewayError(status: .badRequest, code: "bad_request", message: "malformed chunked request body")

    static let requestTimeout = GatewayError(status: .requestTimeout, code: "request_timeout", message: "the request head was not received in time")

    static func bodyTooLarge(limit: Int64) -> GatewayError {
        GatewayError(status: .payloadTooLarge, code: "too_large", message: "the request body is larger than \(limit) bytes")
    }

    static let badTarget = GatewayError(status: .badRequest, code: "bad_target", message: "only origin-form request targets ('/path?query') are supported")

    static func badPath(_ violation: String) -> GatewayError {
        GatewayError(status: .badRequest, code: "bad_path", message: violation)
    }

    // MARK: routing

    static func noRoute(method: String, path: Substring) -> GatewayError {
        GatewayError(status: .notFound, code: "not_found", message: "no service has a route for \(method) \(path)")
    }

    static let adminListenerOnly = GatewayError(status: .notFound, code: "not_found", message: "the admin listener serves only /health and /_tapper/*")

    /// The gateway's own endpoints are read-only.
    static let adminReadOnly = GatewayError(
        status: .methodNotAllowed, code: "method_not_allowed", message: "use GET", headers: [Header(name: "Allow", value: "GET, HEAD")]
    )

    static let noAdminEndpoint = GatewayError(status: .notFound, code: "not_found", message: "no such gateway endpoint")

    static func methodNotAllowed(_ method: String, allowed: [String]) -> GatewayError {
        let list = allowed.joined(separator: ", ")
        return GatewayError(
            status: .methodNotAllowed, code: "method_not_allowed", message: "\(method) is not allowed here; allowed: \(list)",
            headers: [Header(name: "Allow", value: list)]
        )
    }

    static func noHealthyInstance(service: String) -> GatewayError {
        GatewayError(
            status: .serviceUnavailable, code: "no_healthy_instance", message: "service '\(service)' has no healthy instance right now",
            headers: [Header(name: "Retry-After", value: "1")]
        )
    }

    // MARK: traffic policy

    /// The request pinned a version (`X-Tapper-Version`) that has no routable instance.
    static func versionUnavailable(service: String, version: String, header: String) -> GatewayError {
        GatewayError(
            status: .serviceUnavailable, code: "version_unavailable",
            message: "service '\(service)' has no healthy instance of version '\(version)' (asked for by \(header))",
            headers: [Header(name: "Retry-After", value: "1")]
        )
    }

    /// Over the rate limit: `Retry-After`, and the IETF RateLimit fields
    /// (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy` and `RateLimit`).
    /// - Parameters:
    ///   - policy: whose limit it is, the `RateLimit-Policy` name: `gateway`, `service` or `route`.
    ///   - scope: what the limit covers, for the message (empty for the gateway-wide one).
    static func rateLimited(_ limit: RateLimit, key: String, _ decision: TokenBucket.Decision, policy: String = "gateway", scope: String = "") -> GatewayError {
        if decision.storeUnavailable {
            return GatewayError(
                status: .serviceUnavailable, code: "rate_limit_unavailable",
                message: "the \(policy) rate limit\(scope) is shared through a store that is unreachable, and it fails closed",
                headers: [Header(name: "Retry-After", value: "1")]
            )
        }
        return GatewayError(
            status: .tooManyRequests, code: "rate_limited",
            message: "more than \(limit.requests) requests per \(limit.windowSeconds == 1 ? "second" : limit.windowSeconds == 60 ? "minute" : "hour") for this \(key)\(scope); retry in \(decision.retryAfterSeconds) s",
            headers: [
                Header(name: "Retry-After", value: String(decision.retryAfterSeconds)),
                Header(name: "RateLimit-Policy", value: "\"\(policy)\";q=\(limit.requests);w=\(limit.windowSeconds)"),
                Header(name: "RateLimit", value: "\"\(policy)\";r=\(decision.remaining);t=\(decision.retryAfterSeconds)"),
            ]
        )
    }

    // MARK: authentication

    static func adminUnauthorized(tokenPresented: Bool) -> GatewayError {
        GatewayError(
            status: .unauthorized, code: "unauthorized",
            message: tokenPresented ? "the bearer token is not valid" : "the gateway's admin endpoints need a bearer token",
            // Basic too, so a browser opening /_tapper/dashboard asks for it (the token is the password).
            headers: [Header(name: "WWW-Authenticate", value: #"Bearer realm="tapper-admin""#), Header(name: "WWW-Authenticate", value: #"Basic realm="tapper-admin""#)]
        )
    }

    /// A provider's refusal, with its challenge (and `Retry-After` when it answers 503).
    static func refused(_ failure: AuthFailure) -> GatewayError {
        var headers = failure.challenge.map { [Header(name: "WWW-Authenticate", value: $0)] } ?? []
        if failure.status == 503 { headers.insert(Header(name: "Retry-After", value: "1"), at: 0) }
        return GatewayError(status: HTTPResponseStatus(statusCode: failure.status), code: failure.code, message: failure.message, headers: headers)
    }

    static let authTimeout = GatewayError(status: .gatewayTimeout, code: "auth_timeout", message: "the authentication provider did not answer in time")

    // MARK: upstream

    /// Every candidate instance was tried (or none could be picked).
    static func noInstanceReached(service: String, timedOut: Bool) -> GatewayError {
        GatewayError(status: timedOut ? .gatewayTimeout : .badGateway, code: "upstream_unavailable", message: "no instance of '\(service)' could be reached")
    }

    static func connectFailed(timedOut: Bool) -> GatewayError {
        GatewayError(
            status: timedOut ? .gatewayTimeout : .badGateway, code: "upstream_unavailable",
            message: timedOut ? "connecting to the upstream instance timed out" : "the upstream instance refused the connection"
        )
    }

    static let upstreamClosedEarly = GatewayError(
        status: .badGateway, code: "upstream_error", message: "the upstream instance closed the connection before answering"
    )

    static let upstreamTimeout = GatewayError(
        status: .gatewayTimeout, code: "upstream_timeout", message: "the upstream instance did not answer in time", blamesUpstream: true
    )

    // MARK: rendering

    static func body(code: String, message: String) -> String {
        #"{"error":{"code":"\#(code)","message":"\#(escape(message))"}}"#
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if c.value < 0x20 {
                    out += "\\u00" + String(c.value, radix: 16).leftPadded(to: 2)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
