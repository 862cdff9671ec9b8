import NIOHTTP1
import TapperCore

/// Which requests the gateway answers itself, and with what: `/health` on every listener, and
/// `/_tapper/*` where the listener serves the admin endpoints (all of them without
/// `--admin-port`, only the admin listener with it), behind the admin token when one is set.
struct AdminDispatch {
    let gateway: Gateway
    /// This listener serves `/_tapper/*`.
    let servesAdmin: Bool

    /// Whether `path` is the gateway's own.
    @inline(__always)
    func claims(_ path: Substring) -> Bool {
        // The byte test first: Substring's generic hasPrefix cost more than routing.
        Self.mayBeAdminPath(path) && (path == "/health" || (servesAdmin && path.hasPrefix("/_tapper/")))
    }

    /// The answer to a request for one of the gateway's own paths (see ``claims(_:)``).
    /// - Parameter authorization: the request's `Authorization` header, if any.
    func respond(method: String, path: Substring, query: Substring, authorization: String?) -> Result<AdminResponder.Reply, GatewayError> {
        if path != "/health", let expected = gateway.configuration.adminToken() {
            let presented = authorization.flatMap(BearerToken.parse)
            guard let presented, BearerToken.constantTimeEqual(presented, expected) else {
                return .failure(.adminUnauthorized(tokenPresented: presented != nil))
            }
        }
        return .success(gateway.admin.respond(method: HTTPMethod(rawValue: method), path: path, query: query))
    }

    /// Whether `path` can be `/health` or start with `/_tapper/`: its second byte is `h` or `_`.
    @inline(__always)
    static func mayBeAdminPath(_ path: Substring) -> Bool {
        var bytes = path.utf8.makeIterator()
        _ = bytes.next()
        let second = bytes.next()
        return second == UInt8(ascii: "h") || second == UInt8(ascii: "_")
    }
}
