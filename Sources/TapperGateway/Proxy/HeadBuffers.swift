import NIOCore

/// Recycled buffers for the message heads a reactor builds (two per proxied request: the
/// upstream request head and the client response head), so building one costs no allocation
/// and no free.
///
/// A head buffer is ``keep(_:)``-ed right after it is built or queued: the exchange and the
/// connection's write queue hold it meanwhile. Buffers come back out only once the ring is
/// full, so oldest first and ``capacity`` heads later: by then the head has normally been sent
/// and its exchange finished (a request head is kept by its exchange for a retry), the storage
/// is uniquely referenced again and `clear` reuses it. One still in use (an upstream that has
/// not answered, a client that has not read) is left to its holders: `clear` then allocates a
/// new storage, exactly what building a head cost before.
///
/// Memory: at most ``capacity`` buffers of at most ``maxKeptBytes`` each per I/O thread, in
/// practice a few hundred bytes each (about 0.5 MiB).
struct HeadBuffers {
    private var ring: [ByteBuffer?]
    private var first = 0
    private var count = 0

    /// Buffers kept, and how many heads later one is reused: more than twice the requests in
    /// flight on one I/O thread at 256 concurrent clients.
    static let capacity = 1024
    /// Bigger buffers (a large head, or a head with a coalesced body) are not kept.
    static let maxKeptBytes = 4 * 1024

    init() {
        ring = Array(repeating: nil, count: Self.capacity)
    }

    /// A buffer with room for `capacity` bytes, written from its start.
    mutating func take(capacity: Int) -> ByteBuffer {
        guard count == Self.capacity, var buffer = ring[first] else { return ByteBufferAllocator().buffer(capacity: capacity) }
        ring[first] = nil
        first = (first + 1) % Self.capacity
        count -= 1
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    /// Offers a head just built (and held elsewhere) for reuse once its holders are done.
    mutating func keep(_ buffer: ByteBuffer) {
        guard count < Self.capacity, buffer.storageCapacity <= Self.maxKeptBytes else { return }
        ring[(first + count) % Self.capacity] = buffer
        count += 1
    }
}
