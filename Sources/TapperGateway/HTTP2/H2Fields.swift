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
