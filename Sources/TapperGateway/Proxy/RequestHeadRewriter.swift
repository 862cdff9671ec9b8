import NIOCore
import TapperCore

/// The request head as the upstream gets it (DESIGN.md, Proxying): same method, target (minus the
/// service prefix) and headers byte for byte, except hop-by-hop headers (and those `Connection`
/// names), the `X-Forwarded-*` set and `X-Request-ID`, which the gateway writes itself, and
/// `Expect`, which it answered. Always HTTP/1.1 towards the upstream.
struct RequestHeadRewriter {
    /// The client as the gateway sees it.
    var peerIP: String
    /// Whether the peer is a trusted proxy (`--trusted-proxies`): only then are its
    /// `X-Forwarded-*` values kept; anyone else's are replaced by what the gateway sees.
    var peerTrusted: Bool
    /// The client came over TLS (the HTTPS listener): `X-Forwarded-Proto: https`.
    var secure = false

    /// Writes the upstream head of `head` (whose bytes are `headBytes`) into a buffer from `heads`.
    /// - Parameters:
    ///   - target: the request target to send instead of the client's (prefix stripped), if any.
    ///   - requestID: the `X-Request-ID` to send.
    ///   - subject: the authenticated subject (`X-Tapper-Subject`), if any.
    ///   - upgrade: the request asks for a protocol the gateway tunnels (``upgradeTunnelled(_:_:)``):
    ///     `Upgrade` and `Connection: upgrade` go to the upstream (hop-by-hop otherwise).
    ///   - traceParent: with tracing on, the gateway span's context: sent as `traceparent`
    ///     instead of the client's (nil: the client's passes through as it is).
    ///   - traceIDIsRequestID: `requestID` is the trace id's 32 hex digits (the gateway started
    ///     the trace and made both): they are copied, not written again.
    func rewrite(
        _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, target: String?, requestID: String, subject: String?, upgrade: Bool = false,
        traceParent: TraceParent? = nil, traceIDIsRequestID: Bool = false, heads: inout HeadBuffers
    ) -> ByteBuffer {
        // Everything written is a piece of the head, the strings passed in, or a fixed line:
        // twice the head (trusted X-Forwarded-* values are copied twice) bounds it.
        let subject = subject.flatMap { HeaderRules.acceptableFieldValue($0) ? $0 : nil }
        let maxBytes =
            2 * head.length + 2 * head.headers.count + (target?.utf8.count ?? 0) + peerIP.utf8.count + requestID.utf8.count + (subject?.utf8.count ?? 0) + 256
            + (traceParent == nil ? 0 : TraceParent.length + 16)
        var out = heads.take(capacity: maxBytes)
        defer { heads.keep(out) }
        let peerTrusted = self.peerTrusted
        let peerIP = self.peerIP
        let secure = self.secure
        headBytes.withUnsafeReadableBytes { raw in
            out.writeHead(maxBytes: maxBytes) { out in
                out.write(raw, head.method)
                out.write(" ")
                if let target {
                    out.write(string: target)
                } else {
                    out.write(raw, head.target)
                }
                out.write(" HTTP/1.1\r\n")
                // Header names listed in Connection are hop-by-hop too (the gateway's own excepted).
                var named: [Range<Int>] = []
                var host: Range<Int>? = nil
                var forwardedProto: Range<Int>? = nil
                var forwardedHost: Range<Int>? = nil
                for h in head.headers {
                    if peerTrusted && forwardedProto == nil && raw.equalsIgnoringCase(h.name, "x-forwarded-proto") && !h.value.isEmpty {
                        forwardedProto = h.value
                    } else if peerTrusted && forwardedHost == nil && raw.equalsIgnoringCase(h.name, "x-forwarded-host") && !h.value.isEmpty {
                        forwardedHost = h.value
                    } else if host == nil && raw.equalsIgnoringCase(h.name, "host") {
                        host = h.value
                    }
                    HeaderRules.collectConnectionNamed(raw, h, into: &named, sparingGatewayOwned: true)
                }
                for h in head.headers {
                    if HeaderRules.isHopByHop(raw, h.name) || HeaderRules.isGatewayOwned(raw, h.name) { continue }
                    if head.expectContinue && raw.equalsIgnoringCase(h.name, "expect") { continue }
                    if HeaderRules.isNamed(raw, h.name, in: named) { continue }
                    if traceParent != nil && h.name.count == 11 && raw.equalsIgnoringCase(h.name, "traceparent") { continue }
                    out.write(raw, h.name.lowerBound..<h.value.upperBound)
                    out.write("\r\n")
                }
                out.write("X-Forwarded-For: ")
                if peerTrusted {
                    for h in head.headers where raw.equalsIgnoringCase(h.name, "x-forwarded-for") && !h.value.isEmpty {
                        out.write(raw, h.value)
                        out.write(", ")
                    }
                }
                out.write(string: peerIP)
                if let forwardedProto {
                    out.write("\r\nX-Forwarded-Proto: ")
                    out.write(raw, forwardedProto)
                    out.write("\r\n")
                } else if secure {
                    out.write("\r\nX-Forwarded-Proto: https\r\n")
                } else {
                    out.write("\r\nX-Forwarded-Proto: http\r\n")
                }
                if let host = forwardedHost ?? host {
                    out.write("X-Forwarded-Host: ")
                    out.write(raw, host)
                    out.write("\r\n")
                }
                out.write("X-Request-ID: ")
                out.write(string: requestID)
                out.write("\r\n")
                if let traceParent {
                    out.write("traceparent: ")
                    if traceIDIsRequestID {
                        out.write(traceParent, traceIDHex: requestID)
                    } else {
                        out.write(traceParent)
                    }
                    out.write("\r\n")
                }
                if let subject {
                    out.write("X-Tapper-Subject: ")
                    out.write(string: subject)
                    out.write("\r\n")
                }
                if case .chunked = head.framing { out.write("Transfer-Encoding: chunked\r\n") }
                if upgrade, let value = head.upgrade {
                    out.write("Connection: upgrade\r\nUpgrade: ")
                    out.write(raw, value)
                    out.write("\r\n")
                }
                out.write("\r\n")
            }
        }
        return out
    }

    /// Whether `head` asks for a protocol switch the gateway tunnels: HTTP/1.1 with `Connection`
    /// listing `upgrade` and an `Upgrade` header (WebSocket or any other token) — except `h2c`,
    /// which is HTTP/2 itself and is answered over HTTP/1.1 instead (its `Upgrade` is dropped).
    static func upgradeTunnelled(_ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer) -> Bool {
        guard head.connectionUpgrade, head.versionMinor >= 1, let value = head.upgrade, !value.isEmpty else { return false }
        return headBytes.withUnsafeReadableBytes { raw in
            var h2c = false
            raw.forEachToken(in: value) { token in
                if raw.equalsIgnoringCase(token, "h2c") { h2c = true }
            }
            return !h2c
        }
    }

    /// Removes the first `n` path segments (the service prefix) from a request target, keeping
    /// the rest byte for byte: `/api/users/1?x` without 1 segment is `/users/1?x`.
    static func strip(segments n: Int, from uri: String) -> String {
        var seen = 0
        for i in uri.utf8.indices.dropFirst() {
            let b = uri.utf8[i]
            if b == UInt8(ascii: "/") || b == UInt8(ascii: "?") {
                seen += 1
                if seen == n {
                    let rest = uri[i...]
                    return rest.hasPrefix("/") ? String(rest) : "/" + rest
                }
                if b == UInt8(ascii: "?") { break }
            }
        }
        return "/"
    }
}
