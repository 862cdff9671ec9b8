import CTapperH2

/// Header lists handed to nghttp2 (which copies names and values during the call).
enum H2Fields {
    typealias Field = (name: [UInt8], value: [UInt8])

    /// Calls `body` with `nghttp2_nv`s for `pseudo` then `fields`, over one storage.
    static func withNameValues<R>(pseudo: [Field] = [], _ fields: [Field], _ body: ([nghttp2_nv]) -> R) -> R {
        var storage: [UInt8] = []
        var lengths: [(Int, Int)] = []
        lengths.reserveCapacity(pseudo.count + fields.count)
        for f in pseudo {
            storage += f.name
            storage += f.value
            lengths.append((f.name.count, f.value.count))
        }
        for f in fields {
            storage += f.name
            storage += f.value
            lengths.append((f.name.count, f.value.count))
        }
        return storage.withUnsafeMutableBufferPointer { raw in
            var nva: [nghttp2_nv] = []
            nva.reserveCapacity(lengths.count)
            var at = 0
            for (n, v) in lengths {
                let name = raw.baseAddress.map { $0 + at }
                let value = raw.baseAddress.map { $0 + at + n }
                nva.append(nghttp2_nv(name: name, value: value, namelen: n, valuelen: v, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
                at += n + v
            }
            return body(nva)
        }
    }

    /// A response's header list: `:status` first.
    static func withNameValues<R>(_ fields: [Field], status: Int, _ body: ([nghttp2_nv]) -> R) -> R {
        withNameValues(pseudo: [(Array(":status".utf8), Array(String(status).utf8))], fields, body)
    }
}

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
