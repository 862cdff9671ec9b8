import CTapperH2
import NIOCore

/// What both kinds of session (``H2Session`` towards clients, ``H2UpstreamSession`` towards
/// instances) do with nghttp2's bytes.
enum H2Wire {
    /// Queues the frames nghttp2 has to send on `connection` (copied out of its buffer, in
    /// 16 KiB buffers), while the connection takes more or, `whileWritable` false, all of them.
    /// False when nghttp2 failed.
    static func writeFrames(_ ng: OpaquePointer, to connection: Connection, whileWritable: Bool) -> Bool {
        var out = ByteBuffer()
        defer { if out.readableBytes > 0 { connection.write(out) } }
        while !whileWritable || connection.isWritable {
            var data: UnsafePointer<UInt8>? = nil
            let n = nghttp2_session_mem_send(ng, &data)
            if n < 0 { return false }
            if n == 0 { return true }
            if out.writableBytes < n && out.readableBytes > 0 {
                connection.write(out)
                out = ByteBuffer()
            }
            if out.capacity == 0 { out.reserveCapacity(max(n, 16 * 1024 + 64)) }
            out.writeBytes(UnsafeRawBufferPointer(start: data, count: n))
        }
        return true
    }

    /// DATA payload nghttp2 reports while parsing `input` (whose bytes start at `base`): a slice
    /// of the read buffer when it lies in it (no copy), else a copy.
    static func payload(_ data: UnsafePointer<UInt8>, _ length: Int, in input: ByteBuffer, at base: UnsafeRawPointer?) -> ByteBuffer {
        let raw = UnsafeRawPointer(data)
        if let base, raw >= base, raw + length <= base + input.readableBytes {
            return input.getSlice(at: input.readerIndex + (raw - base), length: length)!
        }
        var piece = ByteBuffer()
        piece.writeBytes(UnsafeRawBufferPointer(start: raw, count: length))
        return piece
    }
}

/// HTTP/1.1 chunked framing of one piece of payload (`size CRLF payload CRLF`).
enum ChunkFraming {
    static func chunk(_ payload: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(payload.readableBytes + 24)
        out.writeString(String(payload.readableBytes, radix: 16))
        out.writeStaticString("\r\n")
        out.writeImmutableBuffer(payload)
        out.writeStaticString("\r\n")
        return out
    }
}
