import HTTPTypes

/// Which methods each routed path template serves, so that a known path asked with another
/// method gets 405 with `Allow` (RFC 9110 §15.5.6) instead of the router's 404.
struct AllowedMethods: Sendable {
    private let templates: [(segments: [Substring], methods: Set<String>)]

    /// - Parameter endpoints: every routed method and path, in the router's syntax (`:name` is a
    ///   parameter segment).
    init(_ endpoints: [(HTTPRequest.Method, String)]) {
        var byPath: [String: Set<String>] = [:]
        var order: [String] = []
        for (method, path) in endpoints {
            if byPath[path] == nil { order.append(path) }
            byPath[path, default: []].insert(method.rawValue)
            // The router answers HEAD for every GET (`.autoGenerateHeadEndpoints`).
            if method == .get { byPath[path]!.insert(HTTPRequest.Method.head.rawValue) }
        }
        templates = order.map { (Self.segments(of: $0), byPath[$0]!) }
    }

    /// The methods `path` is served with (sorted, for an `Allow` header), or nil when no route
    /// has that path.
    func methods(for path: String) -> [String]? {
        let parts = Self.segments(of: path)
        var found = Set<String>()
        for t in templates where t.segments.count == parts.count {
            let matches = zip(t.segments, parts).allSatisfy { template, part in
                template.hasPrefix(":") ? !part.isEmpty : template == part
            }
            if matches { found.formUnion(t.methods) }
        }
        return found.isEmpty ? nil : found.sorted()
    }

    private static func segments(of path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { $0 }
    }
}
