/// `application/x-www-form-urlencoded` query strings, as the gateway's admin endpoints read them
/// (`/_tapper/explain?method=GET&path=%2Fusers%2F1`).
public enum QueryString {
    /// The parameters of `query` (with or without its leading `?`), first value of each name
    /// kept; `+` is a space and `%XX` escapes are decoded.
    /// - Returns: nil when an escape is malformed or the bytes are not UTF-8.
    public static func parse(_ query: some StringProtocol) -> [String: String]? {
        var out: [String: String] = [:]
        var q = Substring(query)
        if q.first == "?" { q = q.dropFirst() }
        for pair in q.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { return nil }
            guard let value = parts.count > 1 ? decode(parts[1]) : "" else { return nil }
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    static func decode(_ s: Substring) -> String? {
        PercentDecoding.decode(s.replacingPlus())
    }
}

extension Substring {
    fileprivate func replacingPlus() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "+" ? " " : $0 }))
    }
}
