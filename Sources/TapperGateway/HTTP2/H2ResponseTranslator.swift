import NIOCore
import TapperCore

/// Turns the HTTP/1.1 response the proxy machine writes for one HTTP/2 stream (a proxied
/// response re-framed by ``ResponseHeadRewriter``, or a response of the gateway's own) back
/// into what HTTP/2 carries: a status and lowercase header fields without the connection-
/// specific ones, then the body payload without HTTP/1.1 framing. It also knows when the body
/// is complete, so a response cut short ends in RST_STREAM rather than a clean END_STREAM.
struct H2ResponseTranslator {
    enum Event {
        /// The final head: its status and the header list (`:status` first).
        case head(status: Int, list: H2HeaderList)
        case data(ByteBuffer)
        /// The trailer section of a chunked body (gRPC's `grpc-status` rides here), before the end.
        case trailers(H2HeaderList)
    }

    private enum State {
        case head
        case contentLength(remaining: Int64)
        case chunked(ChunkedBodyTracker)
        case untilClose
        case done
        case failed
    }

    private var state = State.head
    private var partialHead: ByteBuffer?
    /// The trailer section so far (of a chunked body).
    private var trailerBytes: [UInt8] = []
    /// The request was HEAD: the response has no body whatever its headers say.
    let requestWasHEAD: Bool

    init(requestWasHEAD: Bool) {
        self.requestWasHEAD = requestWasHEAD
    }

    /// The response is complete (a close now is the normal end).
    var isComplete: Bool {
        switch state {
        case .done, .untilClose: return true
        default: return false
        }
    }

    var failed: Bool {
        if case .failed = state { return true }
        return false
    }

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
                    HTTPHeadParser.parse(raw, kind: .response, limits: .init(maxHeadBytes: 1 << 20, maxHeaderCount: 10_000), requestMethodWasHEAD: requestWasHEAD)
                }
                switch result {
                case .failure(.incomplete):
                    partialHead = buffer
                    return
                case .failure:
                    state = .failed
                    return
                case .success(let head):
                    let bytes = buffer
                    buffer.moveReaderIndex(forwardBy: head.length)
                    // `100 Continue` and other interim heads: HTTP/2 clients do without them here.
                    if head.status < 200 { continue }
                    emit(.head(status: head.status, list: Self.headerList(head, bytes)))
                    switch head.framing {
                    case .none: state = .done
                    case .contentLength(let n): state = n == 0 ? .done : .contentLength(remaining: n)
                    case .chunked: state = .chunked(ChunkedBodyTracker())
                    case .untilClose: state = .untilClose
                    }
                }
            case .contentLength(let remaining):
                let n = Int(min(Int64(buffer.readableBytes), remaining))
                emit(.data(buffer.readSlice(length: n)!))
                state = remaining == Int64(n) ? .done : .contentLength(remaining: remaining - Int64(n))
            case .chunked(var tracker):
                var pieces: [Range<Int>] = []
                let used: Int
                do {
                    used = try buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in
                        try tracker.consume(raw, payload: { pieces.append($0) }, trailer: { trailerBytes.append(contentsOf: raw[$0]) })
                    }
                } catch {
                    state = .failed
                    return
                }
                for piece in pieces {
                    emit(.data(buffer.getSlice(at: buffer.readerIndex + piece.lowerBound, length: piece.count)!))
                }
                buffer.moveReaderIndex(forwardBy: used)
                if tracker.isComplete {
                    let fields = Self.trailerFields(trailerBytes)
                    trailerBytes = []
                    if fields.count > 0 { emit(.trailers(fields)) }
                    state = .done
                } else {
                    state = .chunked(tracker)
                }
            case .untilClose:
                emit(.data(buffer))
                return
            case .done, .failed:
                return
            }
        }
    }

    /// The fields of a trailer section (`name: value` lines, each ending in CRLF, as
    /// ``ChunkedBodyTracker`` checked them) for HTTP/2: names lowercased, values without the
    /// surrounding whitespace, and the fields a trailer must not carry (framing, routing,
    /// connection-specific) left out.
    static func trailerFields(_ bytes: [UInt8]) -> H2HeaderList {
        var out = H2HeaderList(fields: 4, bytes: bytes.count)
        var i = 0
        while i < bytes.count {
            var end = i
            while end < bytes.count && bytes[end] != UInt8(ascii: "\r") { end += 1 }
            let line = bytes[i..<end]
            i = end + 2
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            var name = Array(line[..<colon])
            for k in name.indices where name[k] >= UInt8(ascii: "A") && name[k] <= UInt8(ascii: "Z") { name[k] |= 0x20 }
            var value = line[(colon + 1)...]
            while let f = value.first, f == 0x20 || f == 0x09 { value.removeFirst() }
            while let l = value.last, l == 0x20 || l == 0x09 { value.removeLast() }
            if Self.forbiddenInTrailers.contains(name) { continue }
            let isHopByHop = name.withUnsafeBytes { raw in HeaderRules.isHopByHop(raw, 0..<raw.count) }
            if isHopByHop { continue }
            out.append(lowercasing: name, value)
        }
        return out
    }

    /// Fields RFC 9110 6.5.1 keeps out of trailers (framing, routing, authentication).
    static let forbiddenInTrailers: Set<[UInt8]> = Set(
        ["content-length", "content-type", "host", "authorization", "set-cookie", "content-encoding", "content-range", "cache-control", "expect", "max-forwards", "pragma", "range"].map { Array($0.utf8) })

    /// The head's fields for HTTP/2: names lowercased, connection-specific (hop-by-hop) ones
    /// left out.
    static func headerList(_ head: HTTPHeadParser.Head, _ bytes: ByteBuffer) -> H2HeaderList {
        bytes.withUnsafeReadableBytes { raw in
            var list = H2HeaderList(fields: head.headers.count + 1, bytes: head.length)
            list.append(":status", Self.statusText(head.status))
            for h in head.headers where !HeaderRules.isHopByHop(raw, h.name) {
                list.append(lowercasing: raw[h.name], raw[h.value])
            }
            return list
        }
    }

    /// The status as three digits, without formatting a number.
    static func statusText(_ status: Int) -> [UInt8] {
        [UInt8(ascii: "0") + UInt8(status / 100 % 10), UInt8(ascii: "0") + UInt8(status / 10 % 10), UInt8(ascii: "0") + UInt8(status % 10)]
    }
}
