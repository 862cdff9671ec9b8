/// Reads one cookie from a `Cookie` request header (RFC 6265 §5.4: `name=value` pairs
/// separated by `;` and optional spaces; a quoted value loses its quotes).
public enum CookieHeader {
    /// The value of cookie `name` in the header value `header`, or nil.
    public static func value(named name: some StringProtocol, in header: some StringProtocol) -> Substring? {
        for pair in Substring(header).split(separator: ";") {
            let trimmed = pair.drop { $0 == " " || $0 == "\t" }
            guard let eq = trimmed.firstIndex(of: "="), trimmed[..<eq] == name else { continue }
            var value = trimmed[trimmed.index(after: eq)...]
            while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
            if value.count >= 2, value.first == "\"", value.last == "\"" { value = value.dropFirst().dropLast() }
            return value
        }
        return nil
    }
}
