/// Where one HTTP/1.1 message body ends, followed over raw bytes without copying them: a proxy
/// forwards the bytes as they are and still knows exactly which of them belong to this message.
///
/// One framer serves both sides of the gateway: request bodies from clients and response bodies
/// from upstream instances. The framing comes from the parsed head
/// (``HTTPHeadParser/Head/framing``); chunked framing is checked by ``ChunkedBodyTracker`` (a
/// malformed chunk is a smuggling vector, so it fails the message).
public struct BodyFramer: Sendable, Hashable {
    enum Mode: Sendable, Hashable {
        /// No body, or the body is complete.
        case done
        case length(remaining: Int64)
        case chunked(ChunkedBodyTracker)
        /// The body ends when the connection does (responses only).
        case untilClose
    }

    /// What one ``consume(_:)`` found.
    public struct Step: Sendable, Hashable {
        /// Leading bytes of the input that belong to this body (framing included).
        public var consumed: Int
        /// Of those, payload bytes (framing excluded).
        public var payloadBytes: Int
        /// The body ended within them.
        public var ended: Bool

        public init(consumed: Int, payloadBytes: Int, ended: Bool) {
            self.consumed = consumed
            self.payloadBytes = payloadBytes
            self.ended = ended
        }
    }

    var mode: Mode

    /// A framer with nothing to read (between messages).
    public init() {
        mode = .done
    }

    /// The framer of a message whose head says `framing`.
    public init(_ framing: HTTPHeadParser.Framing) {
        switch framing {
        case .none: mode = .done
        case .contentLength(let n): mode = n > 0 ? .length(remaining: n) : .done
        case .chunked: mode = .chunked(ChunkedBodyTracker())
        case .untilClose: mode = .untilClose
        }
    }

    /// No body bytes are expected (none was announced, or all have arrived).
    public var isComplete: Bool {
        if case .done = mode { return true }
        return false
    }

    /// The body ends with the connection.
    public var endsWithConnection: Bool {
        if case .untilClose = mode { return true }
        return false
    }

    /// Takes the bytes of `bytes` that belong to this body.
    /// - Returns: how many belong to it, how many of those are payload, and whether it ended.
    /// - Throws: a chunked body that breaks the framing rules.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(ChunkedBodyTracker.Failure) -> Step {
        switch mode {
        case .done:
            return Step(consumed: 0, payloadBytes: 0, ended: true)
        case .length(let remaining):
            let n = Int(min(Int64(bytes.count), remaining))
            let ended = remaining == Int64(n)
            mode = ended ? .done : .length(remaining: remaining - Int64(n))
            return Step(consumed: n, payloadBytes: n, ended: ended)
        case .chunked(var tracker):
            let before = tracker.payloadBytes
            let consumed = try tracker.consume(bytes)
            let ended = tracker.isComplete
            mode = ended ? .done : .chunked(tracker)
            return Step(consumed: consumed, payloadBytes: Int(tracker.payloadBytes - before), ended: ended)
        case .untilClose:
            return Step(consumed: bytes.count, payloadBytes: bytes.count, ended: false)
        }
    }
}
