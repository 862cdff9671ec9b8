import NIOCore
import TapperCore

/// Writes a message head into a buffer's spare capacity with plain memory copies.
///
/// A head is built from a dozen or more pieces (request line, each kept header, the gateway's
/// own headers); going through `ByteBuffer.writeBytes` for each piece paid its capacity check,
/// copy-on-write check and exclusivity bookkeeping every time. The caller reserves an upper bound
/// once (``ByteBuffer/writeHead(maxBytes:_:)``) and the writer only copies.
struct HeadWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    private(set) var count = 0

    fileprivate init(_ buffer: UnsafeMutableRawBufferPointer) {
        base = buffer.baseAddress!
        capacity = buffer.count
    }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(count + bytes.count <= capacity, "message head larger than reserved")
        (base + count).copyMemory(from: src, byteCount: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) {
        write(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }

    @inline(__always)
    mutating func write(_ s: StaticString) {
        write(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// A string's bytes. (Labelled, so literals take the `StaticString` overload: unlabelled,
    /// a literal chose this one and paid a copy and a release per piece.)
    @inline(__always)
    mutating func write(string s: String) {
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { write(UnsafeRawBufferPointer($0)) }
        if done == nil {
            for b in s.utf8 { write(b) }
        }
    }

    /// A `traceparent` value (55 bytes).
    @inline(__always)
    mutating func write(_ traceParent: TraceParent) {
        precondition(count + TraceParent.length <= capacity, "message head larger than reserved")
        traceParent.write(to: base + count)
        count += TraceParent.length
    }

    /// A `traceparent` value whose trace id's 32 hex digits are `traceIDHex` (copied).
    @inline(__always)
    mutating func write(_ traceParent: TraceParent, traceIDHex: String) {
        precondition(count + TraceParent.length <= capacity, "message head larger than reserved")
        let out = base + count
        let copied: Void? = traceIDHex.utf8.withContiguousStorageIfAvailable { hex in
            precondition(hex.count == 32, "a trace id is 32 hex digits")
            traceParent.write(to: out, traceIDHex: UnsafeRawPointer(hex.baseAddress!))
        }
        if copied == nil { traceParent.write(to: out) }
        count += TraceParent.length
    }

    @inline(__always)
    mutating func write(_ byte: UInt8) {
        precondition(count < capacity, "message head larger than reserved")
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }
}

extension ByteBuffer {
    /// Appends a head of at most `maxBytes` written by `body`.
    @inline(__always)
    mutating func writeHead(maxBytes: Int, _ body: (inout HeadWriter) -> Void) {
        writeWithUnsafeMutableBytes(minimumWritableBytes: maxBytes) { raw in
            var writer = HeadWriter(raw)
            body(&writer)
            return writer.count
        }
    }
}
