/// One route a service instance serves: methods plus a path template relative to the
/// service's `prefix`.
public struct RouteSpec: Hashable, Sendable, Codable {
    /// Upper-case HTTP methods; empty means any method.
    public var methods: [String]
    /// The path template, e.g. `/users/{user_id}`.
    public var path: String
    /// When true the gateway serves this route without authentication (see the security issue).
    public var isPublic: Bool
    /// The route is a WebSocket endpoint (JSON `websocket`). Informational: the gateway tunnels
    /// any upgrade request on any route; `route test` and the status say which routes are.
    public var isWebSocket: Bool
    /// This route's own rate limit per client key (JSON `rate_limit`, e.g. `"10/s"`), on top of
    /// the service's and the gateway's.
    public var rateLimit: RateLimit?

    public init(methods: [String] = [], path: String, isPublic: Bool = false, isWebSocket: Bool = false, rateLimit: RateLimit? = nil) {
        self.methods = methods
        self.path = path
        self.isPublic = isPublic
        self.isWebSocket = isWebSocket
        self.rateLimit = rateLimit
    }

    /// Parses the CLI form `'GET /users/{id}'`, `'GET,POST /x'` or just `/x` (any method);
    /// `'WS /ws/{room}'` is a WebSocket route (a GET that upgrades). A third word is the
    /// route's rate limit: `'GET /search 10/s'`.
    public init(parsingCLI spec: String) throws(FieldError) {
        var parts = spec.split(separator: " ", omittingEmptySubsequences: true)
        var limit: RateLimit? = nil
        if parts.count == 3 {
            do {
                limit = try RateLimit(parsing: String(parts[2]))
            } catch {
                throw FieldError(field: "route", message: "'\(Names.printable(spec))': \(error.message)")
            }
            parts.removeLast()
        }
        switch parts.count {
        case 1:
            self.init(methods: [], path: String(parts[0]))
        case 2:
            let methods = parts[0].split(separator: ",").map { String($0).uppercased() }
            if methods == ["WS"] || methods == ["WEBSOCKET"] {
                self.init(methods: ["GET"], path: String(parts[1]), isWebSocket: true)
            } else {
                self.init(methods: methods == ["*"] || methods == ["ANY"] ? [] : methods, path: String(parts[1]))
            }
        default:
            throw FieldError(field: "route", message: "'\(Names.printable(spec))' must look like 'GET /users/{user_id}' or '/path'")
        }
        rateLimit = limit
        do {
            try validated()
        } catch {
            throw error.nested(under: "route")
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case methods, path
        case isPublic = "public"
        case isWebSocket = "websocket"
        case rateLimit = "rate_limit"
    }

    public init(from decoder: any Decoder) throws {
        try StrictKeys.check(decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        methods = try c.strictOptional([String].self, .methods) ?? []
        path = try c.decode(String.self, forKey: .path)
        isPublic = try c.strictOptional(Bool.self, .isPublic) ?? false
        isWebSocket = try c.strictOptional(Bool.self, .isWebSocket) ?? false
        rateLimit = try c.strictOptional(String.self, .rateLimit).map { text throws(FieldError) in try RateLimit(parsing: text, field: "rate_limit") }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(methods, forKey: .methods)
        try c.encode(path, forKey: .path)
        if isPublic { try c.encode(true, forKey: .isPublic) }
        if isWebSocket { try c.encode(true, forKey: .isWebSocket) }
        try c.encodeIfPresent(rateLimit?.description, forKey: .rateLimit)
    }

    /// Validates and normalises (method names upper-cased, duplicates removed, sorted).
    /// - Returns: the normalised route and its parsed template.
    @discardableResult
    public mutating func validated() throws(FieldError) -> RouteTemplate {
        var seen = Set<String>()
        var normalised: [String] = []
        for (i, m) in methods.enumerated() {
            // The token check comes first: uppercased() maps some non-ASCII letters to ASCII ones.
            guard TextRules.isToken(m), m.utf8.count <= 32 else {
                throw FieldError(field: "methods[\(i)]", message: "'\(Names.printable(m))' is not an HTTP method")
            }
            let up = m.uppercased()
            if seen.insert(up).inserted { normalised.append(up) }
        }
        methods = normalised.sorted()
        do {
            return try RouteTemplate(parsing: path)
        } catch {
            throw error.nested(under: "path")
        }
    }
}
