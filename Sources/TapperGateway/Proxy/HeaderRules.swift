import TapperCore

/// Header rules for proxying, over raw head bytes: hop-by-hop removal and the names the gateway
/// writes itself. Every check compares ASCII bytes in place; nothing allocates.
enum HeaderRules {
    /// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy Proxy-* family): Connection,
    /// Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade.
    @inline(__always)
    static func isHopByHop(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 2: return raw.equalsIgnoringCase(name, "te")
        case 7: return raw.equalsIgnoringCase(name, "trailer") || raw.equalsIgnoringCase(name, "upgrade")
        case 10: return raw.equalsIgnoringCase(name, "connection") || raw.equalsIgnoringCase(name, "keep-alive") || hasProxyPrefix(raw, name)
        case 17: return raw.equalsIgnoringCase(name, "transfer-encoding") || hasProxyPrefix(raw, name)
        default: return name.count > 6 && hasProxyPrefix(raw, name)
        }
    }

    /// Request headers the gateway sets itself (`X-Forwarded-For`, `-Proto`, `-Host`,
    /// `X-Request-ID`, `X-Tapper-Subject`): a client's copies are replaced, and a client's `Connection` header may
    /// not remove them.
    @inline(__always)
    static func isGatewayOwned(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        switch name.count {
        case 12: return raw.equalsIgnoringCase(name, "x-request-id")
        case 15: return raw.equalsIgnoringCase(name, "x-forwarded-for")
        case 16: return raw.equalsIgnoringCase(name, "x-forwarded-host") || raw.equalsIgnoringCase(name, "x-tapper-subject")
        case 17: return raw.equalsIgnoringCase(name, "x-forwarded-proto")
        default: return false
        }
    }

    /// Adds the header names a `Connection` header lists (hop-by-hop for this message too) to
    /// `named`, `keep-alive` and `close` aside; `sparingGatewayOwned`: names the gateway writes
    /// itself are left out (a client may not remove them). Any other header adds nothing, and
    /// the usual `Connection: keep-alive` allocates nothing. Called per header from the loop
    /// that already looks at each one.
    @inline(__always)
    static func collectConnectionNamed(
        _ raw: UnsafeRawBufferPointer, _ header: HTTPHeadParser.Header, into named: inout [Range<Int>], sparingGatewayOwned: Bool
    ) {
        guard header.name.count == 10, raw.equalsIgnoringCase(header.name, "connection") else { return }
        raw.forEachToken(in: header.value) { token in
            if raw.equalsIgnoringCase(token, "keep-alive") || raw.equalsIgnoringCase(token, "close") { return }
            if sparingGatewayOwned && isGatewayOwned(raw, token) { return }
            named.append(token)
        }
    }

    /// Whether header `name` is one of `named` (see ``collectConnectionNamed(_:_:into:sparingGatewayOwned:)``).
    @inline(__always)
    static func isNamed(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>, in named: [Range<Int>]) -> Bool {
        !named.isEmpty && named.contains(where: { equalIgnoringCase(raw, $0, name) })
    }

    @inline(__always)
    static func hasProxyPrefix(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
        name.count > 6 && raw.equalsIgnoringCase(name.lowerBound..<name.lowerBound + 6, "proxy-")
    }

    /// ASCII case-insensitive equality of two ranges of the same buffer.
    @inline(__always)
    static func equalIgnoringCase(_ raw: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var i = a.lowerBound
        var j = b.lowerBound
        while i < a.upperBound {
            if fold(raw[i]) != fold(raw[j]) { return false }
            i += 1
            j += 1
        }
        return true
    }

    @inline(__always)
    static func fold(_ b: UInt8) -> UInt8 {
        b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") ? b | 0x20 : b
    }

    /// A value the gateway may write into a header: no control characters (CR, LF, NUL…), no
    /// leading or trailing space; UTF-8 beyond ASCII passes as obs-text.
    static func acceptableFieldValue(_ s: String) -> Bool {
        let u = s.utf8
        guard let first = u.first, let last = u.last, first != 0x20, last != 0x20, u.count <= 1024 else { return false }
        return u.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }

    /// A request id is kept when it is a short token; anything else is replaced.
    static func acceptableRequestID(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 200 && u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
