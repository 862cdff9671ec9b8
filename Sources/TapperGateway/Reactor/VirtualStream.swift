import NIOCore

/// The far end of a virtual ``Connection`` (``Connection/init(virtualFor:reactor:)``): HTTP/2
/// seen by an HTTP/1.1 handler as a connection of its own.
protocol VirtualStream: AnyObject {
    /// Hands the connection's handler what it holds for it, while the handler takes it (run
    /// again by ``Connection/readIfReady()`` when the handler stops holding reads).
    func deliverInbound()
    /// Bytes the handler flushed.
    func outputBytes(_ bytes: ByteBuffer)
    /// Bytes handed over by ``outputBytes(_:)`` and not sent on yet: the connection is writable
    /// while this stays under its high watermark.
    var backlog: Int { get }
    /// The handler closed the connection (`error` nil: an orderly close).
    func virtualClosed(error: Int32?)
}
