import NIOCore
import NIOHTTP1
import TapperCore

/// The request half of an h2c upstream exchange: the HTTP/1.1 request the proxy machine writes
/// (head as ``RequestHeadRewriter`` made it, then the body in its HTTP/1.1 framing) turned into
/// what an HTTP/2 request carries: pseudo-header fields, lowercase fields without the
/// connection-specific ones, and the body payload without framing. Requests follow one another
/// on the same bytes (the virtual connection is kept alive like an HTTP/1.1 one).
struct H2UpstreamRequestTranslator {
    typealias Field = H2Fields.Field

    enum Event {
        /// A request starts (`hasBody` false: it ends with its HEADERS).
        case head(pseudo: [Field], fields: [Field], hasBody: Bool, isHEAD: Bool)
        case data(ByteBuffer)
        /// The request's body is complete.
        case end
    }

    private enum State {
        case head
        case contentLength(remaining: Int64)
        case chunked(ChunkedBodyTracker)
        case failed
    }

    private var state = State.head
    private var partialHead: ByteBuffer?
    private(set) var failed = false

    /// Consumes bytes as written; calls `emit` with what they hold.
    mutating func consume(_ input: ByteBuffer, _ emit: (Event) -> Void) {
        var buffer = input
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                if var partial = partialHead {
                    partial.writeImmutableBuffer(buffer)
                    buffer = partial
                    partialHead = nil
                }
                let result = buffer.withUnsafeReadableBytes { raw in
                    HTTPHeadParser.parse(raw, kind: .request, limits: .init(maxHeadBytes: 1 << 20, maxTargetBytes: 1 << 20, maxHeaderCount: 10_000))
                }
                switch result {
                case .failure(.incomplete):
                    partialHead = buffer
                    return
                case .failure:
                    state = .failed
                    failed = true
                    return
                case .success(let head):
                    let (pseudo, fields) = buffer.withUnsafeReadableBytes { raw in Self.fields(head, raw) }
                    buffer.moveReaderIndex(forwardBy: head.length)
                    let isHEAD = pseudo[0].value == Array("HEAD".utf8)
                    switch head.framing {
                    case .contentLength(let n) where n > 0:
                        emit(.head(pseudo: pseudo, fields: fields, hasBody: true, isHEAD: isHEAD))
                        state = .contentLength(remaining: n)
                    case .chunked:
                        emit(.head(pseudo: pseudo, fields: fields, hasBody: true, isHEAD: isHEAD))
                        state = .chunked(ChunkedBodyTracker())
                    default:
                        emit(.head(pseudo: pseudo, fields: fields, hasBody: false, isHEAD: isHEAD))
                    }
                }
            case .contentLength(let remaining):
                let n = Int(min(Int64(buffer.readableBytes), remaining))
                emit(.data(buffer.readSlice(length: n)!))
                if remaining == Int64(n) {
                    state = .head
                    emit(.end)
                } else {
                    state = .contentLength(remaining: remaining - Int64(n))
                }
            case .chunked(var tracker):
                var pieces: [Range<Int>] = []
                let used: Int
                do {
                    // A request's trailers are not carried (no HTTP/1.1 client of the gateway
                    // sends any that an h2c upstream needs).
                    used = try buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in
                        try tracker.consume(raw) { pieces.append($0) }
                    }
                } catch {
                    state = .failed
                    failed = true
                    return
                }
                for piece in pieces {
                    emit(.data(buffer.getSlice(at: buffer.readerIndex + piece.lowerBound, length: piece.count)!))
                }
                buffer.moveReaderIndex(forwardBy: used)
                if tracker.isComplete {
                    state = .head
                    emit(.end)
                } else {
                    state = .chunked(tracker)
                }
            case .failed:
                return
            }
        }
    }

    /// The request head as HTTP/2 fields: `:method`, `:scheme` (http: h2c is cleartext),
    /// `:authority` from `Host`, `:path` from the target; then every other field lowercased, less
    /// the connection-specific ones, `Host` and `Expect` (the gateway answered that itself), plus
    /// `te: trailers` (gRPC servers ask for it; the gateway passes trailers on).
    static func fields(_ head: HTTPHeadParser.Head, _ raw: UnsafeRawBufferPointer) -> (pseudo: [Field], fields: [Field]) {
        var authority: [UInt8] = []
        var fields: [Field] = []
        fields.reserveCapacity(head.headers.count + 1)
        for h in head.headers {
            if raw.equalsIgnoringCase(h.name, "host") {
                authority = Array(raw[h.value])
                continue
            }
            if HeaderRules.isHopByHop(raw, h.name) || raw.equalsIgnoringCase(h.name, "expect") { continue }
            var name = Array(raw[h.name])
            for i in name.indices where name[i] >= UInt8(ascii: "A") && name[i] <= UInt8(ascii: "Z") { name[i] |= 0x20 }
            fields.append((name, Array(raw[h.value])))
        }
        fields.append((Array("te".utf8), Array("trailers".utf8)))
        let pseudo: [Field] = [
            (Array(":method".utf8), Array(raw[head.method])),
            (Array(":scheme".utf8), Array("http".utf8)),
            (Array(":authority".utf8), authority),
            (Array(":path".utf8), Array(raw[head.target])),
        ]
        return (pseudo, fields)
    }
}

/// The response half of an h2c upstream exchange: an HTTP/2 response turned into the HTTP/1.1
/// bytes ``UpstreamHandler`` reads. A body without `content-length` becomes chunked, so the
/// trailers (gRPC's `grpc-status`) ride in its trailer section; a response that ends with its
/// HEADERS (gRPC's trailers-only answer) gets `content-length: 0`.
struct H2UpstreamResponseWriter {
    typealias Field = H2Fields.Field

    private(set) var chunked = false

    /// The response head. `endStream`: the HEADERS frame ended the stream (no body follows).
    mutating func head(status: Int, fields: [Field], endStream: Bool, requestWasHEAD: Bool) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(256)
        out.writeString("HTTP/1.1 \(status) \(HTTPResponseStatus(statusCode: status).reasonPhrase)\r\n")
        var hasLength = false
        for f in fields {
            if f.name == Self.contentLength { hasLength = true }
            out.writeBytes(f.name)
            out.writeStaticString(": ")
            out.writeBytes(f.value)
            out.writeStaticString("\r\n")
        }
        chunked = false
        let bodyless = requestWasHEAD || status == 204 || status == 304
        if !hasLength && !bodyless {
            if endStream {
                out.writeStaticString("content-length: 0\r\n")
            } else {
                chunked = true
                out.writeStaticString("transfer-encoding: chunked\r\n")
            }
        }
        out.writeStaticString("\r\n")
        return out
    }

    /// DATA payload, framed.
    func data(_ payload: ByteBuffer) -> ByteBuffer {
        chunked ? ChunkFraming.chunk(payload) : payload
    }

    /// The end of the body, with the trailers (dropped unless chunked: a `content-length` body
    /// has nowhere to carry them). Nil: nothing to write.
    func end(trailers: [Field]) -> ByteBuffer? {
        guard chunked else { return nil }
        var out = ByteBuffer()
        out.writeStaticString("0\r\n")
        for f in trailers {
            out.writeBytes(f.name)
            out.writeStaticString(": ")
            out.writeBytes(f.value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        return out
    }

    static let contentLength = Array("content-length".utf8)
}
