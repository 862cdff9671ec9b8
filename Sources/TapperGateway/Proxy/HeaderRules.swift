import NIOHTTP1

/// Header rewriting for proxying: hop-by-hop removal and the `X-Forwarded-*` set.
enum HeaderRules {
    /// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy Proxy-* family), lower case.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// Header names the gateway sets itself: a client's `Connection` header may never remove them.
    static let protected: Set<String> = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id"]

    /// Copies `headers` without hop-by-hop headers and without those `Connection` names.
    /// Returns the input unchanged (no copy) when it has no hop-by-hop header.
    /// - Returns: the filtered headers and whether `Transfer-Encoding: chunked` was present.
    static func strip(_ headers: HTTPHeaders, reserve extra: Int = 4) -> (HTTPHeaders, chunked: Bool) {
        var named: [String] = []
        var chunked = false
        var needsFilter = false
        for (name, value) in headers where isHopByHop(name) {
            needsFilter = true
            if equalsIgnoringCase(name, "connection") {
                for token in value.split(separator: ",") {
                    let t = token.trimmingSpaces()
                    if !t.isEmpty && !protected.contains(t.lowercased()) && !equalsIgnoringCase(t, "keep-alive") && !equalsIgnoringCase(t, "close") {
                        named.append(t.lowercased())
                    }
                }
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                chunked = chunked || value.lowercased().contains("chunked")
            }
        }
        if !needsFilter { return (headers, false) }
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + extra)
        for (name, value) in headers {
            if isHopByHop(name) { continue }
            if !named.isEmpty && named.contains(where: { equalsIgnoringCase(name, $0) }) { continue }
            out.add(name: name, value: value)
        }
        return (out, chunked)
    }

    /// Hop-by-hop test without allocating: compares ASCII bytes case-insensitively.
    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return equalsIgnoringCase(name, "te")
        case 7: return equalsIgnoringCase(name, "trailer") || equalsIgnoringCase(name, "upgrade")
        case 10: return equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive") || hasProxyPrefix(name)
        case 17: return equalsIgnoringCase(name, "transfer-encoding") || hasProxyPrefix(name)
        default: return name.utf8.count > 6 && hasProxyPrefix(name)
        }
    }

    @inline(__always)
    static func hasProxyPrefix(_ name: String) -> Bool {
        var it = name.utf8.makeIterator()
        for expected in "proxy-".utf8 {
            guard let b = it.next(), b | 0x20 == expected | 0x20 else { return false }
        }
        return true
    }

    /// ASCII case-insensitive equality (`lower` must already be lower case).
    @inline(__always)
    static func equalsIgnoringCase<S: StringProtocol>(_ s: S, _ lower: String) -> Bool {
        guard s.utf8.count == lower.utf8.count else { return false }
        return zip(s.utf8, lower.utf8).allSatisfy { a, b in
            let folded = (a >= UInt8(ascii: "A") && a <= UInt8(ascii: "Z")) ? a | 0x20 : a
            return folded == b
        }
    }

    /// A request id is kept when it is a short token; anything else is replaced.
    static func acceptableRequestID(_ s: String) -> Bool {
        let u = s.utf8
        return !u.isEmpty && u.count <= 200 && u.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
