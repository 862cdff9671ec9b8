import NIOCore
import TapperCore

/// Splits the bytes a client sends into request heads and body pieces, without copying: heads
/// are parsed by ``HTTPHeadParser``, bodies followed by ``BodyFramer``. Bytes it cannot use yet
/// (a partial head, or pipelined requests while an exchange runs) wait in it.
struct RequestDecoder {
    enum Event {
        /// A request head (its bytes are a slice of the read buffer).
        case head(HTTPHeadParser.Head, ByteBuffer)
        /// Body bytes of the current request (framing included), `payloadBytes` of them payload;
        /// `ended`: the body is complete with them.
        case body(ByteBuffer, payloadBytes: Int, ended: Bool)
        /// Part of a head arrived; the rest has to follow.
        case headIncomplete
        /// A head the parser refused (the bytes are dropped).
        case headFailed(HTTPHeadParser.Failure)
        /// A chunked body broke the framing rules (the bytes are dropped).
        case bodyFailed
    }

    let limits: HTTPHeadParser.Limits
    /// Bytes not decoded yet.
    private var inbound: ByteBuffer?
    /// The request body being read (complete: the next bytes are a head).
    private var body = BodyFramer()
    /// The last head's header array, handed back to the parser for the next head (unique again
    /// once that head is gone, so parsing allocates nothing).
    private var headerStorage: [HTTPHeadParser.Header] = []

    init(limits: HTTPHeadParser.Limits) {
        self.limits = limits
    }

    /// A request body is being read.
    var readingBody: Bool { !body.isComplete }

    /// Bytes of a next head wait (a pipelined request, or a partial head).
    var holdsHead: Bool { inbound != nil && body.isComplete }

    mutating func append(_ data: ByteBuffer) {
        var buffer = data
        if var earlier = inbound {
            inbound = nil
            earlier.writeBuffer(&buffer)
            inbound = earlier
        } else {
            inbound = buffer
        }
    }

    /// Takes every byte that waits, undecoded (the connection became a tunnel).
    mutating func takeAll() -> ByteBuffer? {
        defer { discard() }
        guard let inbound, inbound.readableBytes > 0 else { return nil }
        return inbound
    }

    /// Drops whatever waits (the connection closes).
    mutating func discard() {
        inbound = nil
        body = BodyFramer()
    }

    /// The next event, or nil when more bytes are needed (or, `headsAllowed` false, a head is
    /// next but must wait).
    @inline(__always)
    mutating func next(headsAllowed: Bool) -> Event? {
        guard var buffer = inbound else { return nil }
        guard buffer.readableBytes > 0 else {
            inbound = nil
            return nil
        }
        if body.isComplete {
            guard headsAllowed else { return nil }
            let limits = self.limits
            let parsed = buffer.withUnsafeReadableBytes {
                HTTPHeadParser.parse($0, kind: .request, limits: limits, reusing: HTTPHeadParser.take(&self.headerStorage))
            }
            switch parsed {
            case .success(let head):
                let headBytes = buffer.readSlice(length: head.length)!
                inbound = buffer.readableBytes > 0 ? buffer : nil
                body = BodyFramer(head.framing)
                return .head(head, headBytes)
            case .failure(.incomplete):
                inbound = buffer.compacted()
                return .headIncomplete
            case .failure(let failure):
                inbound = nil
                return .headFailed(failure)
            }
        }
        var framer = body
        let step: BodyFramer.Step
        do {
            step = try buffer.withUnsafeReadableBytes { raw throws(ChunkedBodyTracker.Failure) in try framer.consume(raw) }
        } catch {
            discard()
            return .bodyFailed
        }
        body = framer
        let slice = buffer.readSlice(length: step.consumed)!
        inbound = buffer.readableBytes > 0 ? buffer : nil
        return .body(slice, payloadBytes: step.payloadBytes, ended: step.ended)
    }

    /// Hands a finished head's header array back for reuse.
    mutating func recycle(_ headers: [HTTPHeadParser.Header]) {
        headerStorage = headers
    }
}
