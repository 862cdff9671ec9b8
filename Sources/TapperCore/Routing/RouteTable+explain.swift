extension RouteTable {
    /// Why a path resolved the way it did, for `tapper route test`.
    public struct Explanation: Sendable {
        /// Every entry whose template matches the path (any method), best first.
        public var candidates: [Entry]
        /// For each losing candidate, the rule that decided against it.
        public var reasons: [String]
    }

    /// Lists the templates matching `path` in precedence order and explains the ranking.
    /// Linear in the table size: a diagnostic, not the data path.
    public func explain(path: some StringProtocol) -> Explanation {
        guard path.first == "/" else { return Explanation(candidates: [], reasons: []) }
        let segments = Substring(path).dropFirst().split(separator: "/", omittingEmptySubsequences: false).compactMap { PercentDecoding.decode($0) }
        var seen = Set<String>()
        var matching: [Entry] = []
        for e in entries where e.template.matches(segments) {
            let key = e.service + " " + e.template.shape
            if seen.insert(key).inserted { matching.append(e) }
        }
        matching.sort { RouteTemplate.precedes($0.template, $1.template) }
        guard let winner = matching.first else { return Explanation(candidates: [], reasons: []) }
        let reasons = matching.dropFirst().map { RouteTemplate.whyPrecedes(winner.template, over: $0.template) }
        return Explanation(candidates: matching, reasons: reasons)
    }

    /// Templates that share the longest literal prefix with `path` (for 404 hints).
    public func nearby(path: some StringProtocol, limit: Int = 5) -> [Entry] {
        let segments = Substring(path).dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        func shared(_ t: RouteTemplate) -> Int {
            var n = 0
            for (a, b) in zip(t.segments, segments) {
                if case .literal(let l) = a, l == b { n += 1 } else if case .parameter = a { n += 1 } else { break }
            }
            return n
        }
        var best: [(Int, Entry)] = []
        var seen = Set<String>()
        for e in entries where seen.insert(e.template.raw).inserted {
            let s = shared(e.template)
            if s > 0 { best.append((s, e)) }
        }
        return best.sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1.template.raw < $1.1.template.raw) }.prefix(limit).map(\.1)
    }
}

extension RouteTemplate {
    /// Whether the template matches decoded path segments (same rules as the trie).
    public func matches(_ path: [String]) -> Bool {
        var i = 0
        for segment in segments {
            switch segment {
            case .literal(let l):
                guard i < path.count, path[i] == l else { return false }
            case .parameter(_, .path):
                return i < path.count
            case .parameter(_, let c):
                guard i < path.count, c.accepts(path[i]) else { return false }
            }
            i += 1
        }
        return i == path.count
    }

    static func rank(_ s: Segment) -> Int {
        switch s {
        case .literal: return -1
        case .parameter(_, let c): return c.rank
        }
    }

    /// Precedence between two templates that both match a path: at the first segment where
    /// their kinds differ, the more specific one wins (literal > typed > {name} > catch-all).
    static func precedes(_ a: RouteTemplate, _ b: RouteTemplate) -> Bool {
        for (x, y) in zip(a.segments, b.segments) where rank(x) != rank(y) {
            return rank(x) < rank(y)
        }
        return a.segments.count > b.segments.count
    }

    static func describe(_ s: Segment) -> String {
        switch s {
        case .literal(let l): return "literal '\(l)'"
        case .parameter(let n, .str): return "parameter {\(n)}"
        case .parameter(let n, .path): return "catch-all {\(n):path}"
        case .parameter(let n, let c): return "typed parameter {\(n):\(c.rawValue)}"
        }
    }

    static func whyPrecedes(_ winner: RouteTemplate, over loser: RouteTemplate) -> String {
        for (i, (x, y)) in zip(winner.segments, loser.segments).enumerated() where rank(x) != rank(y) {
            return "beats \(loser.raw): at segment \(i + 1) a \(describe(x)) is more specific than a \(describe(y))"
        }
        return "beats \(loser.raw): same kinds of segments, and more segments win"
    }
}
