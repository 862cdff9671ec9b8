import Foundation
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// Framing edges of the raw-bytes data path: responses whose length is not a Content-Length,
/// bodiless statuses, 1xx, malformed upstream framing, and requests split at every byte.
@Suite struct RawDataPathTests {
    static func upstream() async throws -> RawUpstream {
        try await RawUpstream { target in
            switch target {
            case "/until-close":
                return .init("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, close-delimited world", close: true)
            case "/early-hints":
                return .init("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            case "/no-content":
                return .init("HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n")
            case "/not-modified":
                return .init("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"v1\"\r\n\r\n")
            case "/head":
                return .init("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            case "/chunked":
                return .init("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
            case "/smuggle":
                return .init("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            case "/bad-chunk":
                return .init("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", close: true)
            default:
                return .init("HTTP/1.1 200 OK\r\nContent-Length: \(target.utf8.count)\r\n\r\n\(target)")
            }
        }
    }

    static let routes = [
        "GET /until-close", "GET /early-hints", "GET /no-content", "GET /not-modified", "HEAD /head", "GET /chunked", "GET /smuggle",
        "GET /bad-chunk", "GET /echo/{rest:path}",
    ]

    func register(_ gw: LiveGateway, _ up: RawUpstream) async throws {
        try await gw.register(
            "raw", "a", ServiceRegistration(url: up.url, routes: try Self.routes.map { try RouteSpec(parsingCLI: $0) })
        )
    }

    /// Decodes a chunked body (sizes only; no extensions or trailers expected). Works on bytes:
    /// a String would treat each CRLF as one character.
    func dechunk(_ s: Substring) -> String? {
        var rest = Array(s.utf8)[...]
        var out: [UInt8] = []
        while let cr = rest.firstIndex(of: UInt8(ascii: "\r")) {
            guard let size = Int(String(decoding: rest[..<cr], as: UTF8.self), radix: 16) else { return nil }
            rest = rest[(cr + 2)...]
            if size == 0 { return String(decoding: out, as: UTF8.self) }
            out += rest.prefix(size)
            rest = rest.dropFirst(size + 2)
        }
        return nil
    }

    @Test func aCloseDelimitedResponseIsChunkedForHTTP11AndCloseDelimitedForHTTP10() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            // HTTP/1.1: chunked, and the client connection stays usable.
            let raw = try await RawHTTP.exchange(port: gw.port, [
                "GET /until-close HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            ])
            let parts = raw.text.components(separatedBy: "HTTP/1.1 200 OK")
            #expect(parts.count == 3, "\(raw.text)")
            let first = try #require(parts.dropFirst().first)
            #expect(first.lowercased().contains("transfer-encoding: chunked"))
            let body = try #require(first.range(of: "\r\n\r\n"))
            #expect(dechunk(first[body.upperBound...]) == "hello, close-delimited world")
            #expect(raw.text.hasSuffix("/echo/next"))
            // HTTP/1.0: the body as is, then the connection closes.
            let old = try await RawHTTP.exchange(port: gw.port, ["GET /until-close HTTP/1.0\r\nHost: x\r\n\r\n"])
            #expect(old.text.hasPrefix("HTTP/1.0 200 OK"))
            #expect(old.text.hasSuffix("\r\n\r\nhello, close-delimited world"))
            #expect(!old.text.lowercased().contains("transfer-encoding"))
            #expect(old.closed)
        }
    }

    @Test func informationalResponsesFromTheUpstreamAreNotForwarded() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            let raw = try await RawHTTP.exchange(port: gw.port, ["GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            #expect(raw.status == 200, "\(raw.text)")
            #expect(!raw.text.contains("103 Early Hints") && !raw.text.contains("Link:"))
            #expect(raw.text.hasSuffix("\r\n\r\nok"))
        }
    }

    @Test func bodilessResponsesKeepTheConnectionInStep() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            let raw = try await RawHTTP.exchange(port: gw.port, [
                "GET /no-content HTTP/1.1\r\nHost: x\r\n\r\nGET /not-modified HTTP/1.1\r\nHost: x\r\n\r\n"
                    + "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            ])
            let text = raw.text
            let statuses = text.components(separatedBy: "\r\n").filter { $0.hasPrefix("HTTP/1.1 ") }
            #expect(statuses == ["HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK"], "\(text)")
            #expect(text.contains("X-Kind: empty"))
            #expect(text.contains("Content-Length: 1000"))
            #expect(text.hasSuffix("\r\n\r\n/echo/last"))
            #expect(up.received == ["/no-content", "/not-modified", "/head", "/echo/last"])
        }
    }

    @Test func chunkedResponsesPassThroughForHTTP11AndAreDecodedForHTTP10() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            let raw = try await RawHTTP.exchange(port: gw.port, ["GET /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            #expect(raw.text.hasSuffix("\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"), "\(raw.text)")
            let old = try await RawHTTP.exchange(port: gw.port, ["GET /chunked HTTP/1.0\r\nHost: x\r\n\r\n"])
            #expect(old.text.hasPrefix("HTTP/1.0 200 OK"))
            #expect(old.text.hasSuffix("\r\n\r\nhello, world"), "\(old.text)")
            #expect(!old.text.lowercased().contains("transfer-encoding"))
            #expect(old.closed)
        }
    }

    @Test func anUpstreamResponseWithAmbiguousFramingIs502() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            let smuggle = try await RawHTTP.exchange(port: gw.port, ["GET /smuggle HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
            #expect(smuggle.status == 502, "\(smuggle.text)")
            // Broken chunked framing after the head was sent: the client connection is cut.
            let broken = try await RawHTTP.exchange(port: gw.port, ["GET /bad-chunk HTTP/1.1\r\nHost: x\r\n\r\n"])
            #expect(broken.closed)
            #expect(!broken.text.contains("zz"), "\(broken.text)")
            #expect(try await httpRequest(.GET, gw.url + "/echo/still-fine").status == 200)
        }
    }

    @Test func pipelinedRequestsSplitAtEveryByteAreAnsweredInOrder() async throws {
        let up = try await Self.upstream()
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await register(gw, up)
            let two = "GET /echo/one HTTP/1.1\r\nHost: x\r\n\r\nGET /echo/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let bytes = Array(two.utf8)
            for split in 1..<bytes.count {
                let a = String(decoding: bytes[..<split], as: UTF8.self)
                let b = String(decoding: bytes[split...], as: UTF8.self)
                // The pause only makes the two writes separate reads on the gateway's side.
                let raw = try await RawHTTP.exchange(port: gw.port, [a, b], pause: .milliseconds(2))
                let one = raw.text.range(of: "/echo/one")
                let second = raw.text.range(of: "/echo/two")
                #expect(one != nil && second != nil && one!.lowerBound < second!.lowerBound, "split at \(split): \(raw.text)")
                #expect(raw.closed)
            }
        }
    }

    @Test func unsupportedTransferCodingsAre501AndChunkedRequestBodiesKeepTheirBytes() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["POST /items/"]))
            let gzip = try await RawHTTP.exchange(port: gw.port, [
                "POST /items/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
            ])
            #expect(gzip.status == 501, "\(gzip.text)")
            #expect(gzip.closed)
            // Chunk extensions and a trailer are accepted; the payload arrives intact.
            let chunked = try await RawHTTP.exchange(port: gw.port, [
                "POST /items/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                "3;name=value\r\nabc\r\n", "4\r\ndefg\r\n0\r\nX-Checksum: 1\r\n\r\n",
            ])
            #expect(chunked.status == 200, "\(chunked.text)")
            #expect(chunked.text.contains("\"body_bytes\":7"))
            #expect(chunked.text.contains("\"body_hash\":\"\(fnv1a(Array("abcdefg".utf8)))\""))
            // Broken chunk framing from a client: 400 and close.
            let broken = try await RawHTTP.exchange(port: gw.port, [
                "POST /items/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"
            ])
            #expect(broken.status == 400, "\(broken.text)")
            #expect(broken.closed)
        }
    }

    @Test func http10ClientsGetHTTP10ResponsesAndKeepAliveOnlyWhenAsked() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let plain = try await RawHTTP.exchange(port: gw.port, ["GET /items/1 HTTP/1.0\r\n\r\n"])
            #expect(plain.text.hasPrefix("HTTP/1.0 200 OK"), "\(plain.text)")
            #expect(plain.closed)
            let kept = try await RawHTTP.exchange(port: gw.port, [
                "GET /items/2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /items/3 HTTP/1.0\r\n\r\n"
            ])
            #expect(kept.text.components(separatedBy: "HTTP/1.0 200 OK").count == 3, "\(kept.text)")
            #expect(kept.text.lowercased().contains("connection: keep-alive"))
            #expect(kept.closed)
        }
    }
}
