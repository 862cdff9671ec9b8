import NIOHTTP1
import TapperCore

/// Which requests the gateway answers itself, and with what: `/health` on every listener,
/// `/_tapper/*` where the listener serves the admin endpoints (all of them without
/// `--admin-port`, only the admin listener with it), behind the admin token when one is set,
/// and the API docs (`/openapi.json`, `/docs`; ``DocsState``) on the proxying listener, open
/// like the routes they describe.
struct AdminDispatch {
    let gateway: Gateway
    /// This listener serves `/_tapper/*`.
    let servesAdmin: Bool
    /// This listener serves the API docs (the one that proxies, so "Try it out" works there).
    let servesDocs: Bool
    /// The second bytes of the docs paths (0: none; no path has a NUL there, PathSafety refuses it).
    let docsSecond: UInt8
    let docsSecond2: UInt8

    init(gateway: Gateway, servesAdmin: Bool, servesDocs: Bool) {
        self.gateway = gateway
        self.servesAdmin = servesAdmin
        self.servesDocs = servesDocs
        let seconds = servesDocs ? gateway.docs.secondBytes : []
        docsSecond = seconds.first ?? 0
        docsSecond2 = seconds.count > 1 ? seconds[1] : 0
    }

    /// Whether `path` is the gateway's own.
    @inline(__always)
    func claims(_ path: Substring) -> Bool {
        // The byte test first: Substring's generic hasPrefix cost more than routing.
        guard let second = Self.secondByte(path) else { return false }
        if second == UInt8(ascii: "h") || second == UInt8(ascii: "_") {
            if path == "/health" || (servesAdmin && path.hasPrefix("/_tapper/")) { return true }
        }
        if second == docsSecond || second == docsSecond2 {
            return gateway.docs.endpoint(path) != nil
        }
        return false
    }

    /// The answer to a request for one of the gateway's own paths (see ``claims(_:)``).
    /// - Parameter authorization: the request's `Authorization` header, if any.
    func respond(method: String, path: Substring, query: Substring, authorization: String?) -> Result<AdminResponder.Reply, GatewayError> {
        if path != "/health" && !path.hasPrefix("/_tapper/"), let endpoint = gateway.docs.endpoint(path) {
            return .success(gateway.docs.respond(endpoint, method: method, snapshot: { gateway.state.snapshot }))
        }
        if path != "/health", let expected = gateway.configuration.adminToken() {
            let presented = authorization.flatMap(AdminCredential.token(fromAuthorization:))
            guard let presented, BearerToken.constantTimeEqual(presented, expected) else {
                return .failure(.adminUnauthorized(tokenPresented: presented != nil))
            }
        }
        return .success(gateway.admin.respond(method: HTTPMethod(rawValue: method), path: path, query: query))
    }

    /// The path's second byte (the first is always `/`).
    @inline(__always)
    static func secondByte(_ path: Substring) -> UInt8? {
        var bytes = path.utf8.makeIterator()
        _ = bytes.next()
        return bytes.next()
    }
}
