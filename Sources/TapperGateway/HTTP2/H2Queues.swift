import NIOCore

/// Body bytes waiting for nghttp2's data callback: a stream's response towards a client, or a
/// request towards an h2c instance. Its ``count`` is the stream's backlog (the virtual
/// connection's writability).
struct H2Outbound {
    private var pieces: [ByteBuffer] = []
    private var head = 0
    private var offset = 0
    /// Bytes waiting.
    private(set) var count = 0

    var isEmpty: Bool { head == pieces.count }

    mutating func append(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        pieces.append(bytes)
        count += bytes.readableBytes
    }

    mutating func removeAll() {
        pieces.removeAll()
        head = 0
        offset = 0
        count = 0
    }

    /// Copies up to `length` waiting bytes into `buffer` (nghttp2's frame buffer); returns how many.
    mutating func copy(into buffer: UnsafeMutablePointer<UInt8>, length: Int) -> Int {
        var copied = 0
        while copied < length && head < pieces.count {
            let piece = pieces[head]
            let n = min(length - copied, piece.readableBytes - offset)
            piece.withUnsafeReadableBytes { raw in
                (buffer + copied).update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, count: n)
            }
            copied += n
            offset += n
            if offset == piece.readableBytes {
                pieces[head] = ByteBuffer()
                head += 1
                offset = 0
            }
        }
        if head == pieces.count {
            pieces.removeAll(keepingCapacity: true)
            head = 0
        }
        count -= copied
        return copied
    }
}

/// Bytes waiting for a virtual connection's handler, each with the DATA payload it carries (to
/// acknowledge to the peer once the handler took it).
struct H2Inbound {
    private var items: [(bytes: ByteBuffer, payload: Int)] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }

    mutating func append(_ bytes: ByteBuffer, payload: Int) { items.append((bytes, payload)) }

    /// The next bytes, oldest first.
    mutating func pop() -> (bytes: ByteBuffer, payload: Int)? {
        guard head < items.count else { return nil }
        let item = items[head]
        items[head] = (ByteBuffer(), 0)
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return item
    }

    /// Drops what is left; returns its DATA payload (to give back to the windows).
    mutating func discard() -> Int {
        var payload = 0
        for item in items[head...] { payload += item.payload }
        items.removeAll()
        head = 0
        return payload
    }
}
