/// The parsed base URL of an instance: `http(s)://host[:port]`.
///
/// Instances are addressed by origin only. A path would be ambiguous (is it a prefix the gateway
/// should add or strip?), so it is refused; use the registration's `prefix` instead.
public struct ServiceURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Sendable { case http, https }
    public var scheme: Scheme
    /// Host as written (IPv6 literals keep their brackets).
    public var host: String
    public var port: Int

    public init(scheme: Scheme, host: String, port: Int) {
        self.scheme = scheme
        self.host = host
        self.port = port
    }

    /// Parses and validates a URL string.
    /// - Throws: ``FieldError`` for `field` when it is not an http(s) origin.
    public init(parsing string: String, field: String = "url") throws(FieldError) {
        if TextRules.hasControlCharacters(string) || string.contains(" ") {
            throw FieldError(field: field, message: "must not contain spaces or control characters")
        }
        let lower = string.lowercased()
        let rest: Substring
        if lower.hasPrefix("http://") {
            scheme = .http
            rest = string.dropFirst(7)
        } else if lower.hasPrefix("https://") {
            scheme = .https
            rest = string.dropFirst(8)
        } else {
            throw FieldError(field: field, message: "'\(Names.printable(string))' must be an http:// or https:// URL")
        }
        var authority = rest
        if let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            let tail = rest[slash...]
            if tail != "/" {
                throw FieldError(field: field, message: "must be an origin like http://host:port without a path or query; use 'prefix' for paths")
            }
            authority = rest[..<slash]
        }
        if authority.contains("@") {
            throw FieldError(field: field, message: "must not contain credentials")
        }
        var hostPart = authority
        var portPart: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw FieldError(field: field, message: "has an unterminated IPv6 address")
            }
            hostPart = authority[...close]
            let address = authority[authority.index(after: authority.startIndex)..<close]
            let isAddressCharacter: (UInt8) -> Bool = { b in
                (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
                    || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "F")) || b == UInt8(ascii: ":") || b == UInt8(ascii: ".")
            }
            guard !address.isEmpty, address.utf8.allSatisfy(isAddressCharacter) else {
                throw FieldError(field: field, message: "'\(Names.printable(String(hostPart)))' is not an IPv6 address")
            }
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw FieldError(field: field, message: "has garbage after the IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        }
        guard !hostPart.isEmpty else { throw FieldError(field: field, message: "must name a host") }
        if !hostPart.hasPrefix("[") {
            let ok = hostPart.utf8.allSatisfy { b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
                    || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
                    || b == UInt8(ascii: "_")
            }
            guard ok else { throw FieldError(field: field, message: "host '\(Names.printable(String(hostPart)))' is not a valid host name") }
        }
        host = String(hostPart).lowercased()
        if let portPart {
            guard let p = Int(portPart), (1...65535).contains(p), portPart.allSatisfy(\.isNumber) else {
                throw FieldError(field: field, message: "port '\(Names.printable(String(portPart)))' must be a number from 1 to 65535")
            }
            port = p
        } else {
            port = scheme == .https ? 443 : 80
        }
    }

    /// Host without IPv6 brackets, for connecting.
    public var connectHost: String {
        host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
    }

    /// `host:port` as used in `Host` headers and logs.
    public var authority: String { "\(host):\(port)" }

    public var description: String { "\(scheme.rawValue)://\(host):\(port)" }
}
