/// What an instance tells the registry about itself: the body of
/// `PUT /v1/services/{service}/instances/{instance_id}`.
///
/// Decoding is strict (unknown keys are refused) and ``validate()`` checks every field, naming
/// the offending one in its ``FieldError``.
public struct ServiceRegistration: Hashable, Sendable, Codable {
    public var url: String
    public var version: String
    public var description: String
    public var prefix: String
    public var healthEndpoint: String
    public var tags: [String]
    public var routes: [RouteSpec]
    public var ttlSeconds: Double
    public var weight: Int
    public var metadata: [String: String]
    /// Per-service balancer override (`round-robin`, `random`, `least-connections`, `weighted`).
    public var loadBalancer: String?
    /// The percentage of the service's requests this instance's version should get (0…100);
    /// nil leaves the version to share the rest by instance count (see ``VersionSplit``).
    public var trafficWeight: Double?
    /// The service's rate limit per client key (JSON `rate_limit`, e.g. `"100/s"`): every route
    /// of the service draws on one budget per key. Instances that disagree: the strictest wins.
    public var rateLimit: RateLimit?
    /// Where the instance serves its OpenAPI document, relative to ``url`` (JSON `openapi_path`,
    /// e.g. FastAPI's `/openapi.json`); the gateway merges it into its own `/openapi.json`.
    /// nil: no document, the registered routes stand for themselves.
    public var openapiPath: String?
    /// How the gateway talks to the instance (JSON `protocol`: `http1` or `h2c`); nil leaves it
    /// to the gateway's `--upstream-protocol` (HTTP/1.1 unless set).
    public var upstreamProtocol: UpstreamProtocol?

    public static let defaultTTLSeconds: Double = 30
    public static let maxRoutes = 2000

    public init(
        url: String,
        version: String = "0.0.0",
        description: String = "",
        prefix: String = "",
        healthEndpoint: String = "/health",
        tags: [String] = [],
        routes: [RouteSpec] = [],
        ttlSeconds: Double = ServiceRegistration.defaultTTLSeconds,
        weight: Int = 1,
        metadata: [String: String] = [:],
        loadBalancer: String? = nil,
        trafficWeight: Double? = nil,
        rateLimit: RateLimit? = nil,
        openapiPath: String? = nil,
        upstreamProtocol: UpstreamProtocol? = nil
    ) {
        self.url = url
        self.version = version
        self.description = description
        self.prefix = prefix
        self.healthEndpoint = healthEndpoint
        self.tags = tags
        self.routes = routes
        self.ttlSeconds = ttlSeconds
        self.weight = weight
        self.metadata = metadata
        self.loadBalancer = loadBalancer
        self.trafficWeight = trafficWeight
        self.rateLimit = rateLimit
        self.openapiPath = openapiPath
        self.upstreamProtocol = upstreamProtocol
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case url, version, description, prefix, tags, routes, weight, metadata
        case healthEndpoint = "health_endpoint"
        case ttlSeconds = "ttl_seconds"
        case loadBalancer = "load_balancer"
        case trafficWeight = "traffic_weight"
        case rateLimit = "rate_limit"
        case openapiPath = "openapi_path"
        case upstreamProtocol = "protocol"
    }

    public init(from decoder: any Decoder) throws {
        try StrictKeys.check(decoder, allowed: CodingKeys.allCases.map(\.rawValue))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        url = try c.decode(String.self, forKey: .url)
        version = try c.strictOptional(String.self, .version) ?? "0.0.0"
        description = try c.strictOptional(String.self, .description) ?? ""
        prefix = try c.strictOptional(String.self, .prefix) ?? ""
        healthEndpoint = try c.strictOptional(String.self, .healthEndpoint) ?? "/health"
        tags = try c.strictOptional([String].self, .tags) ?? []
        routes = try c.strictOptional([RouteSpec].self, .routes) ?? []
        ttlSeconds = try c.strictOptional(Double.self, .ttlSeconds) ?? Self.defaultTTLSeconds
        // Decoded as a number first: JSONDecoder reports a fractional Int without a coding path.
        if let w = try c.strictOptional(Double.self, .weight) {
            guard w.rounded() == w, abs(w) < 1e9 else { throw FieldError(field: "weight", message: "must be an integer") }
            weight = Int(w)
        } else {
            weight = 1
        }
        metadata = try c.strictOptional([String: String].self, .metadata) ?? [:]
        loadBalancer = try c.strictOptional(String.self, .loadBalancer)
        trafficWeight = try c.strictOptional(Double.self, .trafficWeight)
        rateLimit = try c.strictOptional(String.self, .rateLimit).map { text throws(FieldError) in try RateLimit(parsing: text, field: "rate_limit") }
        openapiPath = try c.strictOptional(String.self, .openapiPath)
        upstreamProtocol = try c.strictOptional(String.self, .upstreamProtocol).map { text throws(FieldError) in
            guard let p = UpstreamProtocol(rawValue: text) else {
                throw FieldError(field: "protocol", message: "'\(Names.printable(text))' is not an upstream protocol (http1 or h2c)")
            }
            return p
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(url, forKey: .url)
        try c.encode(version, forKey: .version)
        try c.encode(description, forKey: .description)
        try c.encode(prefix, forKey: .prefix)
        try c.encode(healthEndpoint, forKey: .healthEndpoint)
        try c.encode(tags, forKey: .tags)
        try c.encode(routes, forKey: .routes)
        try c.encode(ttlSeconds, forKey: .ttlSeconds)
        try c.encode(weight, forKey: .weight)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(loadBalancer, forKey: .loadBalancer)
        try c.encodeIfPresent(trafficWeight, forKey: .trafficWeight)
        try c.encodeIfPresent(rateLimit?.description, forKey: .rateLimit)
        try c.encodeIfPresent(openapiPath, forKey: .openapiPath)
        try c.encodeIfPresent(upstreamProtocol?.rawValue, forKey: .upstreamProtocol)
    }

    /// The parsed origin of ``url`` (call after ``validate()``).
    public var serviceURL: ServiceURL? { try? ServiceURL(parsing: url) }

    /// The public templates (prefix + route path), parsed, in ``routes`` order.
    public func publicTemplates() throws(FieldError) -> [RouteTemplate] {
        var out: [RouteTemplate] = []
        for (i, r) in routes.enumerated() {
            do {
                out.append(try RouteTemplate(parsing: prefix + r.path))
            } catch {
                throw error.nested(under: "routes[\(i)].path")
            }
        }
        return out
    }

    /// Validates every field and normalises routes (method case, order).
    /// - Throws: ``FieldError`` naming the first bad field.
    public mutating func validate() throws(FieldError) {
        _ = try ServiceURL(parsing: url, field: "url")
        try TextRules.checkText(version, field: "version", maxLength: 64)
        if version.isEmpty { throw FieldError(field: "version", message: "must not be empty") }
        try TextRules.checkText(description, field: "description", maxLength: 1024)
        try TextRules.checkText(prefix, field: "prefix", maxLength: 512)
        if !prefix.isEmpty {
            // Byte checks, not Character ones: "/" plus a combining mark is one Character.
            guard prefix.utf8.first == UInt8(ascii: "/"), prefix.utf8.last != UInt8(ascii: "/") else {
                throw FieldError(field: "prefix", message: "'\(Names.printable(prefix))' must start with '/' and not end with '/' (e.g. /api)")
            }
            let t: RouteTemplate
            do { t = try RouteTemplate(parsing: prefix) } catch { throw error.nested(under: "prefix") }
            if !t.parameterNames.isEmpty { throw FieldError(field: "prefix", message: "must not contain parameters") }
        }
        try TextRules.checkText(healthEndpoint, field: "health_endpoint", maxLength: 512)
        guard healthEndpoint.utf8.first == UInt8(ascii: "/"), !healthEndpoint.utf8.contains(UInt8(ascii: " ")) else {
            throw FieldError(field: "health_endpoint", message: "'\(Names.printable(healthEndpoint))' must be a path starting with '/'")
        }
        if let path = openapiPath {
            try TextRules.checkText(path, field: "openapi_path", maxLength: 512)
            // A path on the instance, never a URL elsewhere: the gateway fetches url + openapi_path.
            guard path.utf8.first == UInt8(ascii: "/"), !path.utf8.contains(where: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "#") }),
                !path.hasPrefix("//")
            else {
                throw FieldError(field: "openapi_path", message: "'\(Names.printable(path))' must be a path starting with '/' (e.g. /openapi.json)")
            }
        }
        guard tags.count <= 64 else { throw FieldError(field: "tags", message: "at most 64 tags are allowed") }
        for (i, t) in tags.enumerated() {
            try TextRules.checkText(t, field: "tags[\(i)]", maxLength: 128)
            if t.isEmpty { throw FieldError(field: "tags[\(i)]", message: "must not be empty") }
        }
        guard ttlSeconds.isFinite, ttlSeconds >= 1, ttlSeconds <= 86_400 else {
            throw FieldError(field: "ttl_seconds", message: "must be between 1 and 86400 seconds")
        }
        guard (1...1000).contains(weight) else { throw FieldError(field: "weight", message: "must be between 1 and 1000") }
        if let w = trafficWeight {
            guard w.isFinite, (0...100).contains(w) else {
                throw FieldError(field: "traffic_weight", message: "must be a percentage between 0 and 100")
            }
        }
        guard metadata.count <= 64 else { throw FieldError(field: "metadata", message: "at most 64 entries are allowed") }
        for (k, v) in metadata {
            try TextRules.checkText(k, field: "metadata", maxLength: 128)
            try TextRules.checkText(v, field: "metadata.\(k)", maxLength: 1024)
        }
        if let lb = loadBalancer {
            try TextRules.checkText(lb, field: "load_balancer", maxLength: 64)
            guard TextRules.isToken(lb) else { throw FieldError(field: "load_balancer", message: "'\(Names.printable(lb))' is not a balancer name") }
        }
        guard routes.count <= Self.maxRoutes else {
            throw FieldError(field: "routes", message: "at most \(Self.maxRoutes) routes are allowed per instance")
        }
        var seen = Set<String>()
        for i in routes.indices {
            // With the prefix's 512 this keeps every public template within RouteTemplate's 2048.
            guard routes[i].path.unicodeScalars.count <= 1536 else {
                throw FieldError(field: "routes[\(i)].path", message: "must be at most 1536 characters long")
            }
            do {
                try routes[i].validated()
            } catch {
                throw error.nested(under: "routes[\(i)]")
            }
            let template: RouteTemplate
            do { template = try RouteTemplate(parsing: prefix + routes[i].path) } catch { throw error.nested(under: "routes[\(i)].path") }
            if ReservedPaths.isReserved(template) {
                throw FieldError(
                    field: "routes[\(i)].path",
                    message: "'\(prefix + routes[i].path)' is reserved for the gateway (/health and /_tapper/ belong to it)"
                )
            }
            let key = template.shape + " " + routes[i].methods.joined(separator: ",")
            if !seen.insert(key).inserted {
                throw FieldError(field: "routes[\(i)]", message: "duplicates an earlier route '\(routes[i].path)'", isConflict: true)
            }
        }
    }
}

/// Paths the gateway answers itself.
public enum ReservedPaths {
    /// `/health` exactly and anything under `/_tapper/`.
    public static func isReserved(_ template: RouteTemplate) -> Bool {
        guard case .literal(let first)? = template.segments.first else { return false }
        if first == "_tapper" { return true }
        return template.segments == [.literal("health")]
    }
}

extension KeyedDecodingContainer {
    /// Like `decodeIfPresent`, but an explicit `null` is a type error naming the key rather than
    /// silently meaning "absent".
    func strictOptional<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key], debugDescription: "null"))
        }
        return try decode(T.self, forKey: key)
    }
}
