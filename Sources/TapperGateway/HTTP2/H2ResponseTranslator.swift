import NIOCore
import TapperCore

/// Turns the HTTP/1.1 response the proxy machine writes for one HTTP/2 stream (a proxied
/// response re-framed by ``ResponseHeadRewriter``, or a response of the gateway's own) back
/// into what HTTP/2 carries: a status and lowercase header fields without the connection-
/// specific ones, then the body payload without HTTP/1.1 framing. It also knows when the body
/// is complete, so a response cut short ends in RST_STREAM rather than a clean END_STREAM.
struct H2ResponseTranslator {
    enum Event {
        case head(status: Int, fields: [(name: [UInt8], value: [UInt8])])
        case data(ByteBuffer)
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
                    emit(.head(status: head.status, fields: Self.fields(head, bytes)))
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
                        try tracker.consume(raw) { pieces.append($0) }
                    }
                } catch {
                    state = .failed
                    return
                }
                for piece in pieces {
                    emit(.data(buffer.getSlice(at: buffer.readerIndex + piece.lowerBound, length: piece.count)!))
                }
                buffer.moveReaderIndex(forwardBy: used)
                state = tracker.isComplete ? .done : .chunked(tracker)
            case .untilClose:
                emit(.data(buffer))
                return
            case .done, .failed:
                return
            }
        }
    }

    /// The head's fields for HTTP/2: names lowercased, connection-specific (hop-by-hop) ones
    /// left out.
    static func fields(_ head: HTTPHeadParser.Head, _ bytes: ByteBuffer) -> [(name: [UInt8], value: [UInt8])] {
        bytes.withUnsafeReadableBytes { raw in
            var out: [(name: [UInt8], value: [UInt8])] = []
            out.reserveCapacity(head.headers.count)
            for h in head.headers {
                if HeaderRules.isHopByHop(raw, h.name) { continue }
                var name = Array(raw[h.name])
                for i in name.indices where name[i] >= UInt8(ascii: "A") && name[i] <= UInt8(ascii: "Z") { name[i] |= 0x20 }
                out.append((name, Array(raw[h.value])))
            }
            return out
        }
    }
}
