/// The gateway's immutable routing trie, compiled from a catalog snapshot.
///
/// Build one with ``RouteTable/init(snapshot:)`` (or ``RouteTable/Builder``) whenever the catalog
/// changes and swap the whole value in; a table never changes after it is built, so requests in
/// flight keep the table they started with.
///
/// Matching precedence at each path segment, first match wins:
/// literal > typed parameter (`int`, `uuid`, `float`) > plain `{name}` (`str`) > `{rest:path}`.
/// The search backtracks, so a more specific branch that dead-ends falls back to the next one.
/// When a path matches but no route accepts the method, the answer is
/// ``Resolution/methodNotAllowed(allowed:)`` with the union of methods that would succeed.
/// A `GET` route also answers `HEAD`, as in Starlette.
public struct RouteTable: Sendable {
    /// One route as the table knows it: who owns it and which instances declared it.
    public struct Entry: Hashable, Sendable {
        public var service: String
        /// The public template (prefix + path) as registered.
        public var template: RouteTemplate
        /// The method this entry answers (one element), or empty for any method.
        public var methods: [String]
        /// Instance ids of `service` that declared this route, sorted.
        public var instanceIDs: [String]
        public var isPublic: Bool
        /// Some instance declared the route a WebSocket endpoint.
        public var isWebSocket = false
        /// The route's own rate limit (the strictest its instances declare).
        public var rateLimit: RateLimit?
        /// How many leading path segments are the service's `prefix`; the gateway removes them
        /// before forwarding, so the service sees its own route paths.
        public var prefixSegments: Int

        public init(service: String, template: RouteTemplate, methods: [String], instanceIDs: [String], isPublic: Bool, prefixSegments: Int = 0) {
            self.service = service
            self.template = template
            self.methods = methods
            self.instanceIDs = instanceIDs
            self.isPublic = isPublic
            self.prefixSegments = prefixSegments
        }
    }

    /// A successful match.
    public struct Match: Sendable {
        /// Index of ``entry`` in ``RouteTable/entries``, for per-entry data kept beside the table.
        public var entryIndex: Int
        public var entry: Entry
        /// Parameter values (percent-decoded), in template order.
        public var parameters: [(name: String, value: String)]
    }

    public enum Resolution: Sendable {
        case matched(Match)
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    /// A route refused while building because another service already owns it.
    public struct Conflict: Hashable, Sendable {
        public var template: String
        public var method: String
        public var owner: String
        public var refused: String
    }

    struct Node: Sendable {
        var literals: [String: Int32] = [:]
        /// ``literals`` as a list when it is small (``linearLimit`` or fewer): comparing a few
        /// short strings costs less than hashing one. Set by ``Builder/build(index:)``.
        var linearLiterals: [(String, Int32)] = []
        /// Parameter children sorted by convertor rank.
        var parameters: [(RouteTemplate.Convertor, Int32)] = []
        var catchAll: Int32 = -1
        /// Index into `endpoints`, or -1.
        var endpoint: Int32 = -1
    }

    /// The routes ending at one node: by method (a short list, searched in order), plus an
    /// any-method route.
    struct Endpoint: Sendable {
        var byMethod: [(method: String, entry: Int32)] = []
        var anyMethod: Int32 = -1

        func entry(for method: String) -> Int32? {
            for m in byMethod where m.method == method { return m.entry }
            return nil
        }

        mutating func set(_ method: String, _ entry: Int32) {
            if let i = byMethod.firstIndex(where: { $0.method == method }) {
                byMethod[i].entry = entry
            } else {
                byMethod.append((method, entry))
            }
        }
    }

    /// Up to this many literal children are searched as a list rather than hashed.
    static let linearLimit = 8

    /// The child of `node` for the literal `segment`, if any.
    @inline(__always)
    func literalChild(_ node: Int, _ segment: String) -> Int32? {
        if nodes[node].literals.count <= Self.linearLimit {
            for (literal, child) in nodes[node].linearLiterals where literal == segment { return child }
            return nil
        }
        return nodes[node].literals[segment]
    }

    var nodes: [Node]
    var endpoints: [Endpoint]
    /// Every entry, in build order.
    public let entries: [Entry]
    /// Routes refused during the build (should be empty when the registry enforces ownership).
    public let conflicts: [Conflict]
    /// The catalog index the table was built from.
    public let index: UInt64

    /// An empty table.
    public init() {
        nodes = [Node()]
        endpoints = []
        entries = []
        conflicts = []
        index = 0
    }

    init(nodes: [Node], endpoints: [Endpoint], entries: [Entry], conflicts: [Conflict], index: UInt64) {
        self.nodes = nodes
        self.endpoints = endpoints
        self.entries = entries
        self.conflicts = conflicts
        self.index = index
    }

    /// Compiles every instance's routes of a snapshot. Instances of one service share routes;
    /// when two services claim the same method and template, the older registration
    /// (lower create index) keeps it and the other is listed in ``conflicts``.
    public init(snapshot: CatalogSnapshot) {
        var builder = Builder()
        let ordered = snapshot.allInstances.sorted { ($0.createIndex, $0.service, $0.instanceID) < ($1.createIndex, $1.service, $1.instanceID) }
        for record in ordered {
            for route in record.registration.routes {
                guard let template = try? RouteTemplate(parsing: record.registration.prefix + route.path) else { continue }
                let prefix = record.registration.prefix
                let prefixSegments = prefix.isEmpty ? 0 : prefix.split(separator: "/").count
                builder.add(
                    service: record.service, instanceID: record.instanceID, template: template, methods: route.methods, isPublic: route.isPublic,
                    isWebSocket: route.isWebSocket, rateLimit: route.rateLimit, prefixSegments: prefixSegments
                )
            }
        }
        self = builder.build(index: snapshot.index)
    }
}

extension RouteTable {
    /// Accumulates routes, merging instances of the same service, and compiles the trie.
    ///
    /// There is one ``Entry`` per service, template shape and method (nil for any method), so
    /// instances of one service that declare overlapping method sets merge per method.
    public struct Builder: Sendable {
        struct Key: Hashable {
            var shape: String
            var method: String  // "*" for any
        }
        var owners: [Key: Int] = [:]
        var methodsByShape: [String: Set<String>] = [:]
        var entries: [Entry] = []
        var conflicts: [Conflict] = []

        public init() {}

        /// Adds one instance's route. Returns false (and records a conflict) when another
        /// service owns the same method and template shape; nothing of the route is added then.
        @discardableResult
        public mutating func add(
            service: String, instanceID: String, template: RouteTemplate, methods: [String], isPublic: Bool = false, isWebSocket: Bool = false,
            rateLimit: RateLimit? = nil, prefixSegments: Int = 0
        ) -> Bool {
            let shape = template.shape
            let wanted = methods.isEmpty ? ["*"] : methods
            for m in wanted {
                let clashing = m == "*" ? Array(methodsByShape[shape] ?? []) : [m, "*"]
                for other in clashing {
                    if let idx = owners[Key(shape: shape, method: other)], entries[idx].service != service {
                        conflicts.append(Conflict(template: template.raw, method: m, owner: entries[idx].service, refused: service))
                        return false
                    }
                }
            }
            for m in wanted {
                let key = Key(shape: shape, method: m)
                if let idx = owners[key] {
                    if !entries[idx].instanceIDs.contains(instanceID) { entries[idx].instanceIDs.append(instanceID) }
                    // Public only while every instance says so: during a rollout that changes
                    // the flag, the route stays protected (fail closed) until all agree.
                    entries[idx].isPublic = entries[idx].isPublic && isPublic
                    entries[idx].isWebSocket = entries[idx].isWebSocket || isWebSocket
                    entries[idx].rateLimit = RateLimit.stricter(entries[idx].rateLimit, rateLimit)
                } else {
                    entries.append(
                        Entry(
                            service: service, template: template, methods: m == "*" ? [] : [m], instanceIDs: [instanceID], isPublic: isPublic,
                            prefixSegments: prefixSegments
                        )
                    )
                    entries[entries.count - 1].isWebSocket = isWebSocket
                    entries[entries.count - 1].rateLimit = rateLimit
                    owners[key] = entries.count - 1
                    methodsByShape[shape, default: []].insert(m)
                }
            }
            return true
        }

        /// Compiles the trie.
        public func build(index: UInt64 = 0) -> RouteTable {
            var nodes = [Node()]
            var endpoints: [Endpoint] = []
            var finalEntries = entries
            for i in finalEntries.indices { finalEntries[i].instanceIDs.sort() }
            for (entryIndex, entry) in finalEntries.enumerated() {
                var current = 0
                for segment in entry.template.segments {
                    switch segment {
                    case .literal(let s):
                        if let next = nodes[current].literals[s] {
                            current = Int(next)
                        } else {
                            nodes.append(Node())
                            nodes[current].literals[s] = Int32(nodes.count - 1)
                            current = nodes.count - 1
                        }
                    case .parameter(_, .path):
                        if nodes[current].catchAll >= 0 {
                            current = Int(nodes[current].catchAll)
                        } else {
                            nodes.append(Node())
                            nodes[current].catchAll = Int32(nodes.count - 1)
                            current = nodes.count - 1
                        }
                    case .parameter(_, let convertor):
                        if let existing = nodes[current].parameters.first(where: { $0.0 == convertor }) {
                            current = Int(existing.1)
                        } else {
                            nodes.append(Node())
                            nodes[current].parameters.append((convertor, Int32(nodes.count - 1)))
                            nodes[current].parameters.sort { $0.0.rank < $1.0.rank }
                            current = nodes.count - 1
                        }
                    }
                }
                if nodes[current].endpoint < 0 {
                    endpoints.append(Endpoint())
                    nodes[current].endpoint = Int32(endpoints.count - 1)
                }
                let e = Int(nodes[current].endpoint)
                if entry.methods.isEmpty {
                    endpoints[e].anyMethod = Int32(entryIndex)
                } else {
                    for m in entry.methods { endpoints[e].set(m, Int32(entryIndex)) }
                }
            }
            for i in nodes.indices where nodes[i].literals.count <= RouteTable.linearLimit {
                nodes[i].linearLiterals = nodes[i].literals.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            }
            return RouteTable(nodes: nodes, endpoints: endpoints, entries: finalEntries, conflicts: conflicts, index: index)
        }
    }
}
