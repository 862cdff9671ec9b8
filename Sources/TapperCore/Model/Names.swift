/// Rules for service names and instance ids (DESIGN.md "Names").
public enum Names {
    /// Service names are DNS labels: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`.
    public static func validateServiceName(_ name: String, field: String = "service") throws(FieldError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty else { throw FieldError(field: field, message: "must not be empty") }
        guard bytes.count <= 63 else { throw FieldError(field: field, message: "must be at most 63 characters (a DNS label)") }
        func alnum(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
        }
        for b in bytes where !(alnum(b) || b == UInt8(ascii: "-")) {
            throw FieldError(
                field: field,
                message: "'\(printable(name))' is not a valid service name: use lowercase letters, digits and '-' (a DNS label)"
            )
        }
        if !alnum(bytes.first!) || !alnum(bytes.last!) {
            throw FieldError(field: field, message: "'\(printable(name))' must start and end with a lowercase letter or digit")
        }
    }

    /// Instance ids are `[A-Za-z0-9._:-]{1,128}`.
    public static func validateInstanceID(_ id: String, field: String = "instance_id") throws(FieldError) {
        let bytes = Array(id.utf8)
        guard !bytes.isEmpty else { throw FieldError(field: field, message: "must not be empty") }
        guard bytes.count <= 128 else { throw FieldError(field: field, message: "must be at most 128 characters") }
        for b in bytes {
            let ok =
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || "._:-".utf8.contains(b)
            if !ok {
                throw FieldError(field: field, message: "'\(printable(id))' may only contain letters, digits, '.', '_', ':' and '-'")
            }
        }
    }

    /// A stable instance id derived from a URL's host and port, e.g. `127.0.0.1-8002`.
    public static func defaultInstanceID(for url: ServiceURL) -> String {
        var host = url.host
        host.removeAll { $0 == "[" || $0 == "]" }
        let cleaned = String(host.map { c -> Character in
            c.isLetter || c.isNumber || c == "." || c == "-" || c == "_" ? c : "_"
        })
        return "\(cleaned)-\(url.port)"
    }

    /// Renders a value for an error message without letting control characters through.
    public static func printable(_ s: String) -> String {
        let limited = s.count > 80 ? String(s.prefix(80)) + "…" : s
        return String(limited.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}
