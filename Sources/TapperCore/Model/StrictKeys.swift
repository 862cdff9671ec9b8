/// Rejects JSON objects with keys a model does not know, so a typo such as `ttl` for
/// `ttl_seconds` is a 400 naming the field instead of a silently ignored setting.
public enum StrictKeys {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Thrown for an unknown key; the registry turns it into a 400 naming the field.
    public struct UnknownKey: Error, Sendable {
        public var path: [String]
        public var key: String
    }

    static func check(_ decoder: any Decoder, allowed: [String]) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        for key in c.allKeys where !allowed.contains(key.stringValue) {
            throw UnknownKey(path: decoder.codingPath.map(Self.render), key: key.stringValue)
        }
    }

    static func render(_ key: any CodingKey) -> String {
        if let i = key.intValue { return "[\(i)]" }
        return key.stringValue
    }

    /// Joins a coding path into the `routes[0].path` form used in error fields.
    public static func fieldPath(_ components: [String]) -> String {
        var out = ""
        for c in components {
            if c.hasPrefix("[") || out.isEmpty { out += c } else { out += "." + c }
        }
        return out
    }

    /// Joins a `Decoder` coding path into the `routes[0].path` form.
    public static func fieldPath(_ path: [any CodingKey]) -> String {
        fieldPath(path.map { key -> String in
            if let i = key.intValue { return "[\(i)]" }
            // JSONDecoder names array elements "Index N".
            if key.stringValue.hasPrefix("Index "), let i = Int(key.stringValue.dropFirst(6)) { return "[\(i)]" }
            return key.stringValue
        })
    }
}
