extension RouteTable {
    /// Resolves a request.
    /// - Parameters:
    ///   - method: the request method, upper case.
    ///   - path: the path part of the request target, still percent-encoded (no query).
    /// - Returns: the matched route and its parameters, 405 with the allowed methods, or 404.
    public func resolve(method: String, path: some StringProtocol) -> Resolution {
        guard path.first == "/" else { return .notFound }
        var segments: [Substring] = []
        var decoded: [String] = []
        let raw = Substring(path).dropFirst()
        segments = raw.split(separator: "/", omittingEmptySubsequences: false)
        decoded.reserveCapacity(segments.count)
        for s in segments {
            guard let d = PercentDecoding.decode(s) else { return .notFound }
            decoded.append(d)
        }
        var search = Search(table: self, method: method, segments: decoded)
        if let (entryIndex, values) = search.run() {
            let entry = entries[entryIndex]
            let names = entry.template.parameterNames
            return .matched(Match(entryIndex: entryIndex, entry: entry, parameters: Array(zip(names, values)).map { (name: $0.0, value: $0.1) }))
        }
        if search.allowed.isEmpty { return .notFound }
        return .methodNotAllowed(allowed: search.allowed.sorted())
    }

    /// Depth-first search in precedence order; collects allowed methods from path-only matches.
    struct Search {
        let table: RouteTable
        let method: String
        let segments: [String]
        var captures: [String] = []
        var allowed: Set<String> = []

        init(table: RouteTable, method: String, segments: [String]) {
            self.table = table
            self.method = method
            self.segments = segments
        }

        mutating func run() -> (Int, [String])? {
            visit(node: 0, at: 0)
        }

        mutating func endpointMatch(_ nodeIndex: Int32) -> Int? {
            let e = table.nodes[Int(nodeIndex)].endpoint
            guard e >= 0 else { return nil }
            let endpoint = table.endpoints[Int(e)]
            if let i = endpoint.byMethod[method] { return Int(i) }
            if method == "HEAD", let i = endpoint.byMethod["GET"] { return Int(i) }
            if endpoint.anyMethod >= 0 { return Int(endpoint.anyMethod) }
            for m in endpoint.byMethod.keys { allowed.insert(m) }
            if endpoint.byMethod["GET"] != nil { allowed.insert("HEAD") }
            return nil
        }

        mutating func visit(node: Int, at position: Int) -> (Int, [String])? {
            if position == segments.count {
                if let e = endpointMatch(Int32(node)) { return (e, captures) }
                return nil
            }
            let n = table.nodes[node]
            let segment = segments[position]
            if let next = n.literals[segment], let found = visit(node: Int(next), at: position + 1) {
                return found
            }
            for (convertor, child) in n.parameters where convertor.accepts(segment) {
                captures.append(segment)
                if let found = visit(node: Int(child), at: position + 1) { return found }
                captures.removeLast()
            }
            if n.catchAll >= 0 {
                let rest = segments[position...].joined(separator: "/")
                captures.append(rest)
                if let e = endpointMatch(n.catchAll) { return (e, captures) }
                captures.removeLast()
            }
            return nil
        }
    }
}
