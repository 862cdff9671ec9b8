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

    /// The outcome of ``resolveEntry(method:path:)``: like ``Resolution`` without the
    /// parameter values.
    public enum EntryResolution: Sendable {
        /// The index of the matched entry in ``entries``.
        case matched(entryIndex: Int)
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    /// Resolves a request like ``resolve(method:path:)`` but only finds the entry: no parameter
    /// values are collected, so a match allocates nothing beyond the decoded segments. This is
    /// what the gateway's data path needs on every request.
    /// - Parameters:
    ///   - method: the request method, upper case.
    ///   - path: the path part of the request target, still percent-encoded (no query).
    public func resolveEntry(method: String, path: some StringProtocol) -> EntryResolution {
        guard path.first == "/" else { return .notFound }
        let raw = Substring(path).dropFirst()
        let utf8 = raw.utf8
        var decoded: [String] = []
        decoded.reserveCapacity(8)
        var start = utf8.startIndex
        var i = utf8.startIndex
        while true {
            if i == utf8.endIndex || utf8[i] == UInt8(ascii: "/") {
                guard let d = PercentDecoding.decode(raw[start..<i]) else { return .notFound }
                decoded.append(d)
                if i == utf8.endIndex { break }
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        var search = Search(table: self, method: method, segments: decoded, capturing: false)
        if let (entryIndex, _) = search.run() { return .matched(entryIndex: entryIndex) }
        if search.allowed.isEmpty { return .notFound }
        return .methodNotAllowed(allowed: search.allowed.sorted())
    }

    /// ``resolveEntry(method:path:)`` for the gateway's `Substring` path, over its UTF-8 bytes:
    /// the generic version, called from another module, is not specialized (`first`, slicing
    /// and decoding each went through protocol witnesses). Same results.
    public func resolveEntry(method: String, path: Substring) -> EntryResolution {
        var path = path
        return path.withUTF8 { bytes -> EntryResolution in
            guard bytes.first == UInt8(ascii: "/") else { return .notFound }
            var decoded: [String] = []
            decoded.reserveCapacity(8)
            var start = 1
            var i = 1
            var escaped = false
            while true {
                if i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                    let segment = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    if escaped {
                        guard let d = PercentDecoding.decode(String(decoding: segment, as: UTF8.self)) else { return .notFound }
                        decoded.append(d)
                    } else {
                        // No escapes: the bytes are the segment (they came from a String, so
                        // they are valid UTF-8).
                        decoded.append(String(decoding: segment, as: UTF8.self))
                    }
                    if i == bytes.count { break }
                    start = i + 1
                    escaped = false
                } else if bytes[i] == UInt8(ascii: "%") {
                    escaped = true
                }
                i += 1
            }
            var search = Search(table: self, method: method, segments: decoded, capturing: false)
            if let (entryIndex, _) = search.run() { return .matched(entryIndex: entryIndex) }
            if search.allowed.isEmpty { return .notFound }
            return .methodNotAllowed(allowed: search.allowed.sorted())
        }
    }

    /// Depth-first search in precedence order; collects allowed methods from path-only matches.
    struct Search {
        let table: RouteTable
        let method: String
        let segments: [String]
        /// Whether parameter values are collected.
        let capturing: Bool
        var captures: [String] = []
        var allowed: Set<String> = []

        init(table: RouteTable, method: String, segments: [String], capturing: Bool = true) {
            self.table = table
            self.method = method
            self.segments = segments
            self.capturing = capturing
        }

        mutating func run() -> (Int, [String])? {
            visit(node: 0, at: 0)
        }

        mutating func endpointMatch(_ nodeIndex: Int32) -> Int? {
            let e = Int(table.nodes[Int(nodeIndex)].endpoint)
            guard e >= 0 else { return nil }
            // Indexing in place (no `let endpoint = ...`): copying the struct out retained its
            // dictionary on every request.
            if let i = table.endpoints[e].byMethod[method] { return Int(i) }
            if method == "HEAD", let i = table.endpoints[e].byMethod["GET"] { return Int(i) }
            if table.endpoints[e].anyMethod >= 0 { return Int(table.endpoints[e].anyMethod) }
            for m in table.endpoints[e].byMethod.keys { allowed.insert(m) }
            if table.endpoints[e].byMethod["GET"] != nil { allowed.insert("HEAD") }
            return nil
        }

        mutating func visit(node: Int, at position: Int) -> (Int, [String])? {
            if position == segments.count {
                if let e = endpointMatch(Int32(node)) { return (e, captures) }
                return nil
            }
            let segment = segments[position]
            if let next = table.nodes[node].literals[segment], let found = visit(node: Int(next), at: position + 1) {
                return found
            }
            for (convertor, child) in table.nodes[node].parameters where convertor.accepts(segment) {
                if capturing { captures.append(segment) }
                if let found = visit(node: Int(child), at: position + 1) { return found }
                if capturing { captures.removeLast() }
            }
            let catchAll = table.nodes[node].catchAll
            if catchAll >= 0 {
                if capturing { captures.append(segments[position...].joined(separator: "/")) }
                if let e = endpointMatch(catchAll) { return (e, captures) }
                if capturing { captures.removeLast() }
            }
            return nil
        }
    }
}
