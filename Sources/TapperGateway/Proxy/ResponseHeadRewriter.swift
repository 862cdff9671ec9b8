import NIOCore
import TapperCore

/// The response head as the client gets it: the upstream's status line and headers byte for
/// byte, in the client's HTTP version, without hop-by-hop headers (and those `Connection`
/// names), with the exchange's `X-Request-ID` (and `X-Tapper-Instance` when exposed), and with
/// the body framing adapted to what the client can read.
enum ResponseHeadRewriter {
    /// How response body bytes go from the upstream to the client.
    enum BodyMode {
        /// As they arrive (Content-Length, or chunked towards an HTTP/1.1 client).
        case passThrough
        /// A close-delimited upstream body towards an HTTP/1.1 client: the gateway adds chunked
        /// framing so the client connection can stay open.
        case addChunking
        /// A chunked upstream body towards an HTTP/1.0 client: the framing is removed and the
        /// connection closes at the end.
        case removeChunking(ChunkedBodyTracker)
    }

    /// What the upstream's framing means for this client.
    struct Plan {
        var mode = BodyMode.passThrough
        var addChunkedHeader = false
        /// The client connection cannot stay open after this response (an HTTP/1.0 client
        /// reads a chunked or close-delimited body only up to the close).
        var closesClient = false
    }

    static func plan(framing: HTTPHeadParser.Framing, clientMinorVersion: Int) -> Plan {
        let clientIsHTTP11 = clientMinorVersion >= 1
        var plan = Plan()
        switch framing {
        case .chunked:
            if clientIsHTTP11 {
                plan.addChunkedHeader = true
            } else {
                plan.mode = .removeChunking(ChunkedBodyTracker())
                plan.closesClient = true
            }
        case .untilClose:
            if clientIsHTTP11 {
                plan.mode = .addChunking
                plan.addChunkedHeader = true
            } else {
                plan.closesClient = true
            }
        case .none, .contentLength:
            break
        }
        return plan
    }

    /// Writes the client's head into a buffer from `heads`, with room for `bodyRoom` more bytes
    /// behind it (a small body of the same read joins it in one write).
    /// - Parameters:
    ///   - instance: `service/instance` for `X-Tapper-Instance`, when it is exposed.
    ///   - keepAlive: whether the client connection stays open after this response.
    ///   - upgrade: the response is a `101` to a tunnelled upgrade: its `Upgrade` header passes and
    ///     `Connection: upgrade` replaces the keep-alive signalling.
    static func rewrite(
        _ head: HTTPHeadParser.Head, _ bytes: ByteBuffer, plan: Plan, clientMinorVersion: Int, requestID: String, instance: UpstreamTarget?,
        keepAlive: Bool, upgrade: Bool = false, bodyRoom: Int, heads: inout HeadBuffers
    ) -> ByteBuffer {
        let clientIsHTTP11 = clientMinorVersion >= 1
        let maxBytes = bytes.readableBytes + 128 + requestID.utf8.count + (instance.map { $0.service.utf8.count + $0.instanceID.utf8.count } ?? 0)
        var out = heads.take(capacity: maxBytes + bodyRoom)
        bytes.withUnsafeReadableBytes { raw in
            out.writeHead(maxBytes: maxBytes) { out in
                out.write(clientIsHTTP11 ? "HTTP/1.1" : "HTTP/1.0")
                // The status line after the version, as the upstream sent it (" 200 OK").
                let lineEnd = head.headers.first.map { $0.name.lowerBound - 2 } ?? head.length - 4
                out.write(raw, 8..<lineEnd)
                out.write("\r\n")
                var named: [Range<Int>] = []
                for h in head.headers { HeaderRules.collectConnectionNamed(raw, h, into: &named, sparingGatewayOwned: false) }
                for h in head.headers {
                    if upgrade && raw.equalsIgnoringCase(h.name, "upgrade") {
                        out.write(raw, h.name.lowerBound..<h.value.upperBound)
                        out.write("\r\n")
                        continue
                    }
                    if HeaderRules.isHopByHop(raw, h.name) || raw.equalsIgnoringCase(h.name, "x-request-id") { continue }
                    if instance != nil && raw.equalsIgnoringCase(h.name, "x-tapper-instance") { continue }
                    if HeaderRules.isNamed(raw, h.name, in: named) { continue }
                    out.write(raw, h.name.lowerBound..<h.value.upperBound)
                    out.write("\r\n")
                }
                out.write("X-Request-ID: ")
                out.write(string: requestID)
                out.write("\r\n")
                if let t = instance {
                    out.write("X-Tapper-Instance: ")
                    out.write(string: t.service)
                    out.write("/")
                    out.write(string: t.instanceID)
                    out.write("\r\n")
                }
                if plan.addChunkedHeader { out.write("Transfer-Encoding: chunked\r\n") }
                if upgrade {
                    out.write("Connection: upgrade\r\n")
                } else if !keepAlive {
                    out.write("Connection: close\r\n")
                } else if !clientIsHTTP11 {
                    out.write("Connection: keep-alive\r\n")
                }
                out.write("\r\n")
            }
        }
        return out
    }
}
