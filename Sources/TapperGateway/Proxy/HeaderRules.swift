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
    /// - Returns: the filtered headers and whether `Transfer-Encoding: chunked` was present.
    static func strip(_ headers: HTTPHeaders, reserve extra: Int = 4) -> (HTTPHeaders, chunked: Bool) {
        var named: Set<String> = []
        var chunked = false
        var needsFilter = false
        for (name, value) in headers {
            if isHopByHop(name) {
                needsFilter = true
                if name.utf8.count == 10, name.lowercased() == "connection" {
                    for token in value.split(separator: ",") {
                        let t = token.trimmingSpaces().lowercased()
                        if !t.isEmpty && !protected.contains(t) { named.insert(t) }
                    }
                } else if name.utf8.count == 17, name.lowercased() == "transfer-encoding" {
                    chunked = chunked || value.lowercased().contains("chunked")
                }
            }
        }
        if !needsFilter { return (headers, false) }
        var out = HTTPHeaders()
        out.reserveCapacity(headers.count + extra)
        for (name, value) in headers {
            if isHopByHop(name) { continue }
            if !named.isEmpty && named.contains(name.lowercased()) { continue }
            out.add(name: name, value: value)
        }
        return (out, chunked)
    }

    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2, 7, 9, 10, 16, 17, 18, 19:
            let lower = name.lowercased()
            return hopByHop.contains(lower) || lower.hasPrefix("proxy-")
        default:
            return name.utf8.count > 6 && name.lowercased().hasPrefix("proxy-")
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
