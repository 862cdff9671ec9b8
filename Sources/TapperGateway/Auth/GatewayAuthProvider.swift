import NIOCore
import TapperCore

/// Decides whether a request may go through the gateway (the original Tapper's `auth_provider=`).
///
/// The gateway asks the provider about every proxied request whose route is not public
/// (`"public": true` in its registration); `/health` is always public, and `/_tapper/*` has its
/// own token (`--admin-token-file`) or listener (`--admin-port`). A refused request is answered
/// with the provider's status (401 with `WWW-Authenticate`, or 403) and never reaches an
/// upstream. An allowed request is forwarded with `X-Tapper-Subject` set to the subject the
/// provider names (a client's own `X-Tapper-Subject` is always removed).
///
/// Providers that can decide from the request alone implement ``decideImmediately(_:)``, which
/// the gateway calls on its I/O thread without suspending; the others implement only
/// ``authenticate(_:)`` (which may do I/O), and the request waits, its body buffered up to a
/// bound, until it answers.
///
/// ```swift
/// struct TeamHeaderAuth: GatewayAuthProvider {
///     func authenticate(_ request: AuthRequest) async -> AuthDecision {
///         request.header("x-team") == "core" ? .allow(subject: "core") : .deny(.unauthorized("a team header is required", scheme: "Team"))
///     }
/// }
/// var configuration = GatewayConfiguration()
/// configuration.auth = TeamHeaderAuth()
/// ```
public protocol GatewayAuthProvider: Sendable {
    /// Answers at once when the request alone decides it; nil defers to ``authenticate(_:)``.
    /// Runs on one of the gateway's I/O threads: it must not block.
    func decideImmediately(_ request: AuthRequest) -> AuthDecision?

    /// The full decision; may suspend (call another service, refresh keys).
    func authenticate(_ request: AuthRequest) async -> AuthDecision
}

extension GatewayAuthProvider {
    public func decideImmediately(_ request: AuthRequest) -> AuthDecision? { nil }
}

/// What a ``GatewayAuthProvider`` sees of a request: method, target, headers and peer, plus the
/// route it matched. Header values are read from the request head on demand.
public struct AuthRequest: Sendable {
    public let method: String
    /// The request target as sent (path and query), e.g. `/users/7?full=1`.
    public let target: String
    /// The path part of ``target``.
    public let path: String
    /// The client's address as the gateway sees it (not `X-Forwarded-For`).
    public let peerAddress: String
    /// The service whose route matched.
    public let service: String
    /// The matched route's public template, e.g. `/users/{user_id}`.
    public let routeTemplate: String
    let headBytes: ByteBuffer
    let headerRanges: [HTTPHeadParser.Header]

    init(
        method: String, target: String, path: String, peerAddress: String, service: String, routeTemplate: String, headBytes: ByteBuffer,
        headerRanges: [HTTPHeadParser.Header]
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.peerAddress = peerAddress
        self.service = service
        self.routeTemplate = routeTemplate
        self.headBytes = headBytes
        self.headerRanges = headerRanges
    }

    /// A request built by hand, e.g. to test a provider.
    public init(
        method: String, target: String, headers: [(name: String, value: String)], peerAddress: String = "127.0.0.1", service: String = "",
        routeTemplate: String = ""
    ) {
        var bytes = ByteBuffer()
        var ranges: [HTTPHeadParser.Header] = []
        for (name, value) in headers {
            let nameStart = bytes.writerIndex
            bytes.writeString(name)
            let nameEnd = bytes.writerIndex
            bytes.writeStaticString(": ")
            let valueStart = bytes.writerIndex
            bytes.writeString(value)
            ranges.append(HTTPHeadParser.Header(name: nameStart..<nameEnd, value: valueStart..<bytes.writerIndex))
            bytes.writeStaticString("\r\n")
        }
        let path = RequestTarget.path(of: target)
        self.init(
            method: method, target: target, path: path, peerAddress: peerAddress, service: service, routeTemplate: routeTemplate, headBytes: bytes,
            headerRanges: ranges
        )
    }

    /// The first value of header `name` (ASCII case-insensitive), or nil.
    public func header(_ name: String) -> String? {
        let wanted = Array(name.utf8).map(HeaderRules.fold)
        return headBytes.withUnsafeReadableBytes { raw in
            for h in headerRanges where h.name.count == wanted.count {
                var same = true
                for (i, b) in wanted.enumerated() where HeaderRules.fold(raw[h.name.lowerBound + i]) != b {
                    same = false
                    break
                }
                if same { return String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self) }
            }
            return nil
        }
    }

    /// Every header as sent, in order.
    public var headers: [(name: String, value: String)] {
        headBytes.withUnsafeReadableBytes { raw in
            headerRanges.map {
                (
                    String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0.name]), as: UTF8.self),
                    String(decoding: UnsafeRawBufferPointer(rebasing: raw[$0.value]), as: UTF8.self)
                )
            }
        }
    }

    /// The credential of `Authorization: Bearer …`, if the request has one.
    public var bearerToken: String? { header("authorization").flatMap(BearerToken.parse) }
}

/// A provider's answer.
public enum AuthDecision: Sendable, Hashable {
    /// Let the request through; `subject` (a key name, a JWT `sub`) is passed upstream as
    /// `X-Tapper-Subject` when given.
    case allow(subject: String?)
    case deny(AuthFailure)
}

/// A refused request: the status, a message safe to show the client, and the
/// `WWW-Authenticate` challenge of a 401.
public struct AuthFailure: Sendable, Hashable, Error {
    public var status: Int
    public var code: String
    public var message: String
    public var challenge: String?

    public init(status: Int, code: String, message: String, challenge: String?) {
        self.status = status
        self.code = code
        self.message = message
        self.challenge = challenge
    }

    /// 401 with `WWW-Authenticate: <scheme> realm="tapper"[, error="invalid_token"]`.
    public static func unauthorized(_ message: String, scheme: String = "Bearer", invalidToken: Bool = false) -> AuthFailure {
        let challenge = #"\#(scheme) realm="tapper""# + (invalidToken ? #", error="invalid_token""# : "")
        return AuthFailure(status: 401, code: "unauthorized", message: message, challenge: challenge)
    }

    /// The response headers of the refusal: its challenge, if any.
    var headers: [(String, String)] { challenge.map { [("WWW-Authenticate", $0)] } ?? [] }

    /// 403: the caller is known but may not do this.
    public static func forbidden(_ message: String) -> AuthFailure {
        AuthFailure(status: 403, code: "forbidden", message: message, challenge: nil)
    }
}

extension GatewayAuthProvider {
    /// Runs ``authenticate(_:)`` off the I/O thread and hands the decision to `decided` on
    /// `reactor` (the exchange waits meanwhile; nothing blocks the loop).
    func decideLater(_ request: AuthRequest, on reactor: Reactor, _ decided: @escaping (AuthDecision) -> Void) {
        // The callback goes in a box only the reactor opens: it holds the connection's handler
        // (a value named in a struct, never a tuple: destructuring a tuple out of the box
        // over-released the handler, Swift 6.3.1, a use-after-free in AuthTests).
        let waiting = ReactorBound(PendingDecision(decided: decided))
        Task {
            let decision = await authenticate(request)
            reactor.execute { waiting.value.decided(decision) }
        }
    }
}

/// A deferred auth decision's callback, bound to its reactor.
private struct PendingDecision {
    let decided: (AuthDecision) -> Void
}
