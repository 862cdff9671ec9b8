import NIOCore
import NIOHTTP1
import TapperCore

/// The request half of an h2c upstream exchange: the HTTP/1.1 request the proxy machine writes
/// (head as ``RequestHeadRewriter`` made it, then the body in its HTTP/1.1 framing) turned into
/// what an HTTP/2 request carries: pseudo-header fields, lowercase fields without the
/// connection-specific ones, and the body payload without framing. Requests follow one another
/// on the same bytes (the virtual connection is kept alive like an HTTP/1.1 one).
struct H2UpstreamRequestTranslator {
    enum Event {
        /// A request starts (`hasBody` false: it ends with its HEADERS).
        case head(list: H2HeaderList, hasBody: Bool, isHEAD: Bool)
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
                    let (list, isHEAD) = buffer.withUnsafeReadableBytes { raw in
                        (Self.headerList(head, raw), raw.equalsIgnoringCase(head.method, "head"))
                    }
                    buffer.moveReaderIndex(forwardBy: head.length)
                    switch head.framing {
                    case .contentLength(let n) where n > 0:
                        emit(.head(list: list, hasBody: true, isHEAD: isHEAD))
                        state = .contentLength(remaining: n)
                    case .chunked:
                        emit(.head(list: list, hasBody: true, isHEAD: isHEAD))
                        state = .chunked(ChunkedBodyTracker())
                    default:
                        emit(.head(list: list, hasBody: false, isHEAD: isHEAD))
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
    static func headerList(_ head: HTTPHeadParser.Head, _ raw: UnsafeRawBufferPointer) -> H2HeaderList {
        var list = H2HeaderList(fields: head.headers.count + 5, bytes: head.length + 48)
        list.append(":method", raw[head.method])
        list.append(":scheme", "http".utf8)
        let host = head.headers.firstIndex { $0.name.count == 4 && raw.equalsIgnoringCase($0.name, "host") }
        list.append(":authority", host.map { raw[head.headers[$0].value] } ?? raw[0..<0])
        list.append(":path", raw[head.target])
        for (i, h) in head.headers.enumerated() {
            if i == host || HeaderRules.isHopByHop(raw, h.name) || (h.name.count == 6 && raw.equalsIgnoringCase(h.name, "expect")) { continue }
            list.append(lowercasing: raw[h.name], raw[h.value])
        }
        list.append("te", "trailers".utf8)
        return list
    }
}

/// The response half of an h2c upstream exchange: an HTTP/2 response turned into the HTTP/1.1
/// bytes ``UpstreamHandler`` reads. A body without `content-length` becomes chunked, so the
/// trailers (gRPC's `grpc-status`) ride in its trailer section; a response that ends with its
/// HEADERS (gRPC's trailers-only answer) gets `content-length: 0`.
struct H2UpstreamResponseWriter {
    private(set) var chunked = false
    /// The head being written, field by field as nghttp2 reports them.
    private var out = ByteBuffer()
    private var hasLength = false
    private(set) var status = 0
    /// The trailer section so far (fields of a trailing HEADERS frame).
    private var trailerSection = ByteBuffer()

    /// A head starts (`:status` comes first in HTTP/2): its status line.
    mutating func start(status: Int) {
        self.status = status
        hasLength = false
        trailerSection = ByteBuffer()
        out = ByteBuffer()
        out.reserveCapacity(512)
        out.writeStaticString("HTTP/1.1 ")
        out.writeBytes(H2ResponseTranslator.statusText(status))
        out.writeStaticString(" ")
        out.writeString(HTTPResponseStatus(statusCode: status).reasonPhrase)
        out.writeStaticString("\r\n")
    }

    /// A field of the head (nghttp2 checked it: lowercase, no connection-specific ones).
    mutating func field(name: some Collection<UInt8>, value: some Collection<UInt8>) {
        if !hasLength && name.count == 14 && name.elementsEqual(Self.contentLength) { hasLength = true }
        out.writeBytes(name)
        out.writeStaticString(": ")
        out.writeBytes(value)
        out.writeStaticString("\r\n")
    }

    /// The head is complete. `endStream`: the HEADERS frame ended the stream (no body follows).
    mutating func finish(endStream: Bool, requestWasHEAD: Bool) -> ByteBuffer {
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
        defer { out = ByteBuffer() }
        return out
    }

    /// DATA payload, framed.
    func data(_ payload: ByteBuffer) -> ByteBuffer {
        chunked ? ChunkFraming.chunk(payload) : payload
    }

    /// A trailer field (nghttp2 checked it, as for the head).
    mutating func trailer(name: some Collection<UInt8>, value: some Collection<UInt8>) {
        trailerSection.writeBytes(name)
        trailerSection.writeStaticString(": ")
        trailerSection.writeBytes(value)
        trailerSection.writeStaticString("\r\n")
    }

    /// The end of the body, with the trailers (dropped unless chunked: a `content-length` body
    /// has nowhere to carry them). Nil: nothing to write.
    mutating func end() -> ByteBuffer? {
        defer { trailerSection = ByteBuffer() }
        guard chunked else { return nil }
        var out = ByteBuffer()
        out.reserveCapacity(trailerSection.readableBytes + 5)
        out.writeStaticString("0\r\n")
        out.writeImmutableBuffer(trailerSection)
        out.writeStaticString("\r\n")
        return out
    }

    static let contentLength = Array("content-length".utf8)
}
