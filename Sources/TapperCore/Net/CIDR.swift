#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 network such as `10.0.0.0/8`, `127.0.0.1` (a /32) or `::1/128`: which peers
/// the gateway believes about `X-Forwarded-For`.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    /// The network address, 4 or 16 bytes.
    public let address: [UInt8]
    public let prefixLength: Int

    /// - Throws: ``FieldError`` naming what is wrong with `text`.
    public init(parsing text: String, field: String = "trusted_proxies") throws(FieldError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(of: String(parts[0])) else {
            throw FieldError(field: field, message: "'\(text)' is not an IPv4 or IPv6 address or network")
        }
        let bits = bytes.count * 8
        var length = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bits).contains(n), parts[1].allSatisfy(\.isASCII) else {
                throw FieldError(field: field, message: "'\(text)' has a prefix length outside 0...\(bits)")
            }
            length = n
        }
        self.prefixLength = length
        self.address = Self.masked(bytes, length)
    }

    public var description: String {
        let family = address.count == 4 ? AF_INET : AF_INET6
        var out = [CChar](repeating: 0, count: 64)
        _ = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &out, socklen_t(out.count)) }
        let text = out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return "\(text)/\(prefixLength)"
    }

    /// Whether `ip` (text, as a socket reports it) lies in this network. IPv4-mapped IPv6
    /// addresses (`::ffff:10.1.2.3`) count as their IPv4 address.
    public func contains(_ ip: String) -> Bool {
        guard var bytes = Self.bytes(of: ip) else { return false }
        if bytes.count == 16 && address.count == 4 && bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == address.count else { return false }
        return Self.masked(bytes, prefixLength) == address
    }

    static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { i, b in
            let keep = max(0, min(8, length - i * 8))
            return keep == 8 ? b : keep == 0 ? 0 : b & ~(UInt8(0xFF) >> keep)
        }
    }
}

extension Array where Element == CIDR {
    /// Whether any network contains `ip`.
    public func contains(ip: String) -> Bool { contains { $0.contains(ip) } }
}
