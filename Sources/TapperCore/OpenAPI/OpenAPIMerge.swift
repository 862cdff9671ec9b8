/// Merges the OpenAPI documents of the services behind the gateway into one OpenAPI 3.1
/// document for the gateway's `/openapi.json`. Pure: documents in, document out.
///
/// For each service (in name order):
/// - its paths get the service's `prefix` (the public path the gateway routes), with Starlette
///   convertors dropped (`{id:int}` → `{id}`);
/// - only operations the gateway routes to that service are kept (its registered routes, and
///   among services that claim the same method and path, the route table's owner);
/// - `operationId`s become `<service>_<operationId>` and every `components` name becomes
///   `<service>.<name>` (service names have no dot, so two services never collide), with every
///   `$ref` and security requirement rewritten to match;
/// - every operation is tagged with the service's name (one tag per service, described by
///   the service's description and versions);
/// - a service without a document (or with one that is not OpenAPI 3) contributes its
///   registered routes as bare operations: path parameters typed from their convertors and a
///   default response.
///
/// The result's `servers` is the gateway alone, so "Try it out" goes through the gateway.
public enum OpenAPIMerge {
    /// One service's contribution.
    public struct Source: Hashable, Sendable {
        public var service: String
        public var prefix: String
        public var description: String
        public var versions: [String]
        /// The routes the service registered (paths without the prefix).
        public var routes: [RouteSpec]
        /// The service's own OpenAPI document, if it has one and it was fetched.
        public var document: JSONValue?

        public init(service: String, prefix: String = "", description: String = "", versions: [String] = [], routes: [RouteSpec], document: JSONValue? = nil) {
            self.service = service
            self.prefix = prefix
            self.description = description
            self.versions = versions
            self.routes = routes
            self.document = document
        }
    }

    /// An operation left out because another service has it.
    public struct Conflict: Hashable, Sendable, CustomStringConvertible {
        public var method: String
        public var path: String
        public var owner: String
        public var refused: String
        public var description: String { "\(method.uppercased()) \(path): kept from \(owner), left out of \(refused)" }

        public init(method: String, path: String, owner: String, refused: String) {
            self.method = method
            self.path = path
            self.owner = owner
            self.refused = refused
        }
    }

    public struct Result: Sendable {
        public var document: JSONValue
        public var conflicts: [Conflict]
    }

    static let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    static let componentKinds = ["schemas", "responses", "parameters", "examples", "requestBodies", "headers", "securitySchemes", "links", "callbacks", "pathItems"]

    /// Merges `sources` into one document.
    /// - Parameters:
    ///   - owners: who owns a public route, keyed ``ownerKey(method:shape:)`` (method `*` for
    ///     any), from the route table; without an entry, the first service by name keeps it.
    ///   - serverURL: the gateway's base URL as clients see it (`/`: the page's own origin).
    ///   - title: `info.title`.
    ///   - version: `info.version` (e.g. the catalog index).
    public static func merge(
        _ sources: [Source], owners: [String: String] = [:], serverURL: String = "/", title: String = "Tapper gateway", version: String = "1"
    ) -> Result {
        var paths: [JSONValue.Member] = []
        var pathIndex: [String: Int] = [:]
        /// The path string first used for each shape, so `/x/{a}` and `/x/{b}` never both appear.
        var shapeToPath: [String: String] = [:]
        var components: [String: [JSONValue.Member]] = [:]
        var tags: [JSONValue] = []
        var operationIDs = Set<String>()
        var conflicts: [Conflict] = []
        var claimed: [String: String] = [:]

        for source in sources.sorted(by: { $0.service < $1.service }) {
            let service = source.service
            var tag: [JSONValue.Member] = [.init("name", .string(service))]
            var tagText = source.description
            if !source.versions.isEmpty { tagText += (tagText.isEmpty ? "" : " ") + "(version \(source.versions.joined(separator: ", ")))" }
            if !tagText.isEmpty { tag.append(.init("description", .string(tagText))) }
            tags.append(.object(tag))

            let registered = registeredShapes(source)
            var operations: [(path: String, method: String, operation: JSONValue, pathItem: JSONValue?)] = []
            if let doc = source.document, isOpenAPI3(doc), let docPaths = doc["paths"]?.members {
                let renamed = rewriteRefs(doc, service: service)
                let security = renamed["security"]
                for member in docPaths {
                    guard let item = renamed["paths"]?[member.key], let itemMembers = item.members else { continue }
                    let publicPath = publicPath(prefix: source.prefix, path: member.key)
                    guard let shape = shape(of: publicPath) else { continue }
                    var shared = JSONValue.object(itemMembers.filter { !methods.contains($0.key) && $0.key != "servers" })
                    if shared.members?.isEmpty == true { shared = .null }
                    for m in itemMembers where methods.contains(m.key) {
                        guard registered.contains(m.key.uppercased() + " " + shape) || registered.contains("* " + shape) else { continue }
                        var op = m.value
                        op.remove("servers")
                        if op["security"] == nil, let security { op.set("security", security) }
                        operations.append((publicPath, m.key, op, shared == .null ? nil : shared))
                    }
                }
                for kind in componentKinds {
                    for c in renamed["components"]?[kind]?.members ?? [] {
                        components[kind, default: []].append(.init(service + "." + c.key, c.value))
                    }
                }
            } else {
                for route in source.routes where !route.isWebSocket {
                    let publicPath = publicPath(prefix: source.prefix, path: route.path)
                    let verbs = route.methods.isEmpty ? ["get", "post", "put", "patch", "delete"] : route.methods.map { $0.lowercased() }.filter { methods.contains($0) }
                    for verb in verbs {
                        operations.append((publicPath, verb, bareOperation(service: service, method: verb, template: source.prefix + route.path), nil))
                    }
                }
            }

            for (path, method, operation, shared) in operations {
                guard let shape = shape(of: path) else { continue }
                let key = method.uppercased() + " " + shape
                let owner = owners[ownerKey(method: method, shape: shape)] ?? owners[ownerKey(method: "*", shape: shape)] ?? claimed[key] ?? service
                if owner != service || (claimed[key] != nil && claimed[key] != service) {
                    conflicts.append(Conflict(method: method, path: path, owner: claimed[key] ?? owner, refused: service))
                    continue
                }
                let pathKey = shapeToPath[shape] ?? path
                shapeToPath[shape] = pathKey
                if pathKey != path {
                    // Same route, other parameter names: its parameters would not match the path.
                    conflicts.append(Conflict(method: method, path: path, owner: "\(pathKey) (another spelling of the same template)", refused: service))
                    continue
                }
                claimed[key] = service
                var op = operation
                op.set("tags", [.string(service)])
                let base = service + "_" + (op["operationId"]?.stringValue ?? defaultOperationID(method: method, path: path))
                var id = base
                var n = 2
                while !operationIDs.insert(id).inserted {
                    id = base + "_\(n)"
                    n += 1
                }
                op.set("operationId", .string(id))
                var item = pathIndex[pathKey].map { paths[$0].value } ?? shared ?? .object([])
                if case .null = item { item = .object([]) }
                if let shared, pathIndex[pathKey] != nil {
                    // Path-level fields of a second service on the same path stay with its operations.
                    for m in shared.members ?? [] where item[m.key] == nil { item.set(m.key, m.value) }
                }
                item.set(method, op)
                if let at = pathIndex[pathKey] {
                    paths[at].value = item
                } else {
                    pathIndex[pathKey] = paths.count
                    paths.append(.init(pathKey, item))
                }
            }
        }

        let names = sources.map(\.service).sorted()
        var doc: [JSONValue.Member] = [
            .init("openapi", "3.1.0"),
            .init(
                "info",
                .object([
                    .init("title", .string(title)),
                    .init("version", .string(version)),
                    .init(
                        "description",
                        .string(
                            names.isEmpty
                                ? "No service is registered yet." : "The services behind this gateway: \(names.joined(separator: ", ")). Every request goes through the gateway."
                        )),
                ])),
            .init("servers", [.object([.init("url", .string(serverURL))])]),
            .init("tags", .array(tags)),
            .init("paths", .object(paths)),
        ]
        let componentMembers = componentKinds.compactMap { kind in components[kind].map { JSONValue.Member(kind, .object($0)) } }
        if !componentMembers.isEmpty { doc.append(.init("components", .object(componentMembers))) }
        if !conflicts.isEmpty {
            doc.append(.init("x-tapper-conflicts", .array(conflicts.map { .string($0.description) })))
        }
        return Result(document: .object(doc), conflicts: conflicts)
    }

    /// The key of ``merge(_:owners:serverURL:title:version:)``'s `owners`.
    public static func ownerKey(method: String, shape: String) -> String { method.uppercased() + " " + shape }

    /// Whether `doc` claims to be OpenAPI 3.x (Swagger 2.0 documents are not merged).
    static func isOpenAPI3(_ doc: JSONValue) -> Bool {
        doc["openapi"]?.stringValue?.hasPrefix("3.") == true
    }

    /// `prefix + path` with Starlette convertors removed: `{id:int}` → `{id}`.
    static func publicPath(prefix: String, path: String) -> String {
        var out = ""
        var inBrace = false
        var skipping = false
        for c in prefix + path {
            if c == "{" {
                inBrace = true
            } else if c == "}" {
                inBrace = false
                skipping = false
            } else if c == ":" && inBrace {
                skipping = true
                continue
            }
            if !skipping { out.append(c) }
        }
        return out
    }

    /// The route-table shape of a public OpenAPI path (convertors are not in OpenAPI paths, so
    /// every parameter is `{name}`: compared to the routes' shapes with convertors erased).
    static func shape(of openAPIPath: String) -> String? {
        guard let t = try? RouteTemplate(parsing: openAPIPath) else { return nil }
        return untypedShape(t)
    }

    public static func untypedShape(_ t: RouteTemplate) -> String {
        "/"
            + t.segments.map { s in
                if case .literal(let l) = s { return l }
                return "{}"
            }.joined(separator: "/")
    }

    /// `METHOD shape` of every registered route of `source` (`*` for any method).
    static func registeredShapes(_ source: Source) -> Set<String> {
        var out = Set<String>()
        for r in source.routes {
            guard let t = try? RouteTemplate(parsing: source.prefix + r.path) else { continue }
            let shape = untypedShape(t)
            if r.methods.isEmpty { out.insert("* " + shape) }
            for m in r.methods { out.insert(m.uppercased() + " " + shape) }
        }
        return out
    }

    static func defaultOperationID(method: String, path: String) -> String {
        var id = method
        for c in path.unicodeScalars {
            id.unicodeScalars.append(c.properties.isAlphabetic || ("0"..."9").contains(c) ? c : "_")
        }
        return id
    }

    /// An operation for a route the service registered without a document.
    static func bareOperation(service: String, method: String, template: String) -> JSONValue {
        var parameters: [JSONValue] = []
        if let t = try? RouteTemplate(parsing: template) {
            for s in t.segments {
                guard case .parameter(let name, let convertor) = s else { continue }
                let schema: JSONValue
                switch convertor {
                case .int: schema = ["type": "integer"]
                case .float: schema = ["type": "number"]
                case .uuid: schema = ["type": "string", "format": "uuid"]
                case .str, .path: schema = ["type": "string"]
                }
                parameters.append(["name": .string(name), "in": "path", "required": true, "schema": schema])
            }
        }
        var op: [JSONValue.Member] = [
            .init("summary", .string("\(method.uppercased()) \(publicPath(prefix: "", path: template))")),
            .init("description", .string("Registered by \(service) without an OpenAPI document.")),
        ]
        if !parameters.isEmpty { op.append(.init("parameters", .array(parameters))) }
        op.append(.init("responses", ["default": ["description": .string("The response of \(service)")]]))
        return .object(op)
    }

    /// `doc` with every local component reference and security requirement renamed for `service`.
    static func rewriteRefs(_ doc: JSONValue, service: String) -> JSONValue {
        let schemeNames = Set(doc["components"]?["securitySchemes"]?.members?.map(\.key) ?? [])
        func walk(_ v: JSONValue, key: String?) -> JSONValue {
            switch v {
            case .object(let members):
                return .object(
                    members.map { m in
                        if m.key == "$ref", case .string(let ref) = m.value { return .init(m.key, .string(renameRef(ref, service: service))) }
                        if m.key == "security", case .array(let reqs) = m.value, key != "properties" {
                            return .init(m.key, .array(reqs.map { renameRequirement($0, service: service, schemes: schemeNames) }))
                        }
                        return .init(m.key, walk(m.value, key: m.key))
                    })
            case .array(let items):
                return .array(items.map { walk($0, key: nil) })
            default:
                return v
            }
        }
        return walk(doc, key: nil)
    }

    /// `#/components/schemas/User` → `#/components/schemas/<service>.User`; other refs unchanged.
    static func renameRef(_ ref: String, service: String) -> String {
        let head = "#/components/"
        guard ref.hasPrefix(head) else { return ref }
        let rest = ref.dropFirst(head.count)
        guard let slash = rest.firstIndex(of: "/") else { return ref }
        let kind = rest[..<slash]
        guard componentKinds.contains(String(kind)) else { return ref }
        return head + kind + "/" + service + "." + rest[rest.index(after: slash)...]
    }

    static func renameRequirement(_ req: JSONValue, service: String, schemes: Set<String>) -> JSONValue {
        guard case .object(let members) = req else { return req }
        return .object(members.map { schemes.contains($0.key) ? .init(service + "." + $0.key, $0.value) : $0 })
    }
}
