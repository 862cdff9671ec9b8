/// The admin token as a request presents it: `Authorization: Bearer TOKEN` (scripts, the CLI),
/// or `Authorization: Basic base64(any-user:TOKEN)`, which is what a browser sends after its
/// login prompt, so the dashboard at `/_tapper/dashboard` works with `--admin-token-file` too.
public enum AdminCredential {
    /// The token in an `Authorization` header value, or nil.
    public static func token(fromAuthorization header: some StringProtocol) -> String? {
        if let bearer = BearerToken.parse(header) { return bearer }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic", let decoded = base64Decode(parts[1].trimmingSpaces()) else { return nil }
        guard let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let password = decoded[decoded.index(after: colon)...]
        guard !password.isEmpty else { return nil }
        return String(validating: Array(password), as: UTF8.self)
    }

    /// Standard base64 (RFC 4648 §4), padding optional; nil for any other byte.
    public static func base64Decode(_ text: some StringProtocol) -> [UInt8]? {
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for b in text.utf8 {
            let v: UInt32
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(b - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(b - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(b - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            case UInt8(ascii: "="): continue
            default: return nil
            }
            acc = acc << 6 | v
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
