/// `Authorization: Bearer …` parsing and a constant-time comparison, shared by the registry's
/// token checks and the gateway's admin endpoints.
public enum BearerToken {
    /// The token of an `Authorization` header value, or nil when it is not a bearer token.
    public static func parse(_ header: some StringProtocol) -> String? {
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        var token = Substring(parts[1])
        while let f = token.first, f == " " || f == "\t" { token = token.dropFirst() }
        while let l = token.last, l == " " || l == "\t" { token = token.dropLast() }
        return token.isEmpty ? nil : String(token)
    }

    /// Compares without an early exit, so response time does not reveal how much matched.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0
            let r = i < y.count ? y[i] : 0
            diff |= l ^ r
        }
        return diff == 0
    }
}
