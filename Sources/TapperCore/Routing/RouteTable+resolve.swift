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
        var search = Search(method: method, capturing: true)
        if let (entryIndex, values) = decoded.withUnsafeBufferPointer({ run(&search, $0) }) {
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
        var search = Search(method: method, capturing: false)
        if let (entryIndex, _) = decoded.withUnsafeBufferPointer({ run(&search, $0) }) { return .matched(entryIndex: entryIndex) }
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
            // The decoded segments live in a stack buffer: no array is allocated per request.
            var count = 1
            for b in bytes.dropFirst() where b == UInt8(ascii: "/") { count += 1 }
            return withUnsafeTemporaryAllocation(of: String.self, capacity: count) { buffer -> EntryResolution in
                var filled = 0
                defer { buffer.baseAddress!.deinitialize(count: filled) }
                var start = 1
                var i = 1
                var escaped = false
                while true {
                    if i == bytes.count || bytes[i] == UInt8(ascii: "/") {
                        let segment = UnsafeBufferPointer(rebasing: bytes[start..<i])
                        if escaped {
                            guard let d = PercentDecoding.decode(String(decoding: segment, as: UTF8.self)) else { return .notFound }
                            (buffer.baseAddress! + filled).initialize(to: d)
                        } else {
                            // No escapes: the bytes are the segment (they came from a String, so
                            // they are valid UTF-8).
                            (buffer.baseAddress! + filled).initialize(to: String(decoding: segment, as: UTF8.self))
                        }
                        filled += 1
                        if i == bytes.count { break }
                        start = i + 1
                        escaped = false
                    } else if bytes[i] == UInt8(ascii: "%") {
                        escaped = true
                    }
                    i += 1
                }
                var search = Search(method: method, capturing: false)
                if let (entryIndex, _) = run(&search, UnsafeBufferPointer(start: buffer.baseAddress, count: filled)) {
                    return .matched(entryIndex: entryIndex)
                }
                if search.allowed.isEmpty { return .notFound }
                return .methodNotAllowed(allowed: search.allowed.sorted())
            }
        }
    }

    /// What a search carries besides the table (which it reads in place, never copies).
    struct Search {
        let method: String
        /// Whether parameter values are collected.
        let capturing: Bool
        var captures: [String] = []
        /// Methods of path-only matches, for a 405.
        var allowed: Set<String> = []
    }

    /// Depth-first search in precedence order; collects allowed methods from path-only matches.
    func run(_ search: inout Search, _ segments: UnsafeBufferPointer<String>) -> (Int, [String])? {
        visit(&search, segments, node: 0, at: 0)
    }

    func endpointMatch(_ search: inout Search, _ nodeIndex: Int32) -> Int? {
        let e = Int(nodes[Int(nodeIndex)].endpoint)
        guard e >= 0 else { return nil }
        // Indexing in place (no `let endpoint = ...`): copying the struct out retained its
        // list on every request.
        if let i = endpoints[e].entry(for: search.method) { return Int(i) }
        if search.method == "HEAD", let i = endpoints[e].entry(for: "GET") { return Int(i) }
        if endpoints[e].anyMethod >= 0 { return Int(endpoints[e].anyMethod) }
        for m in endpoints[e].byMethod { search.allowed.insert(m.method) }
        if endpoints[e].entry(for: "GET") != nil { search.allowed.insert("HEAD") }
        return nil
    }

    func visit(_ search: inout Search, _ segments: UnsafeBufferPointer<String>, node: Int, at position: Int) -> (Int, [String])? {
        if position == segments.count {
            if let e = endpointMatch(&search, Int32(node)) { return (e, search.captures) }
            return nil
        }
        let segment = segments[position]
        if let next = literalChild(node, segment), let found = visit(&search, segments, node: Int(next), at: position + 1) {
            return found
        }
        for (convertor, child) in nodes[node].parameters where convertor.accepts(segment) {
            if search.capturing { search.captures.append(segment) }
            if let found = visit(&search, segments, node: Int(child), at: position + 1) { return found }
            if search.capturing { search.captures.removeLast() }
        }
        let catchAll = nodes[node].catchAll
        if catchAll >= 0 {
            if search.capturing { search.captures.append(segments[position...].joined(separator: "/")) }
            if let e = endpointMatch(&search, catchAll) { return (e, search.captures) }
            if search.capturing { search.captures.removeLast() }
        }
        return nil
    }
}
