import CTapperH2

/// A header list for nghttp2 built in one buffer (names and values back to back): a head costs
/// two allocations, not two per field. Pseudo-header fields go first, as HTTP/2 requires.
struct H2HeaderList {
    private(set) var bytes: [UInt8] = []
    private(set) var lengths: [(name: Int, value: Int)] = []

    init(fields: Int = 16, bytes: Int = 512) {
        self.bytes.reserveCapacity(bytes)
        lengths.reserveCapacity(fields)
    }

    var count: Int { lengths.count }

    mutating func append(_ name: StaticString, _ value: some Collection<UInt8>) {
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: value)
        lengths.append((name.utf8CodeUnitCount, value.count))
    }

    /// A field whose name may hold uppercase letters (from an HTTP/1.1 head): lowercased.
    mutating func append(lowercasing name: some Collection<UInt8>, _ value: some Collection<UInt8>) {
        let start = bytes.count
        bytes.append(contentsOf: name)
        bytes.withUnsafeMutableBufferPointer { all in
            for i in start..<all.count where all[i] &- UInt8(ascii: "A") < 26 { all[i] |= 0x20 }
        }
        bytes.append(contentsOf: value)
        lengths.append((name.count, value.count))
    }

    /// Calls `body` with `nghttp2_nv`s pointing into the list (valid during the call only).
    func withNameValues<R>(_ body: (UnsafeBufferPointer<nghttp2_nv>) -> R) -> R {
        bytes.withUnsafeBufferPointer { raw in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(1, lengths.count)) { nva in
                let base = UnsafeMutablePointer(mutating: raw.baseAddress)
                var at = 0
                for (i, (n, v)) in lengths.enumerated() {
                    nva[i] = nghttp2_nv(name: base.map { $0 + at }, value: base.map { $0 + at + n }, namelen: n, valuelen: v, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
                    at += n + v
                }
                return body(UnsafeBufferPointer(rebasing: nva[..<lengths.count]))
            }
        }
    }

    /// The fields as text, in order (for tests and logs).
    var strings: [(name: String, value: String)] {
        var out: [(name: String, value: String)] = []
        var at = 0
        for (n, v) in lengths {
            out.append((String(decoding: bytes[at..<at + n], as: UTF8.self), String(decoding: bytes[at + n..<at + n + v], as: UTF8.self)))
            at += n + v
        }
        return out
    }
}
