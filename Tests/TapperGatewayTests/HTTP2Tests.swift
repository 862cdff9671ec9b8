import Atomics
import Foundation
import NIOCore
import Testing
import TapperCore
import TapperTesting

@testable import TapperGateway

/// HTTP/2 towards clients with real clients: curl (`--http2-prior-knowledge` on the plain port,
/// `--http2` and `--http1.1` over TLS), openssl s_client for ALPN, h2load for many streams on
/// few connections. The misbehaving-client cases (bad preface, window overflow, oversized
/// header lists, rapid reset, GOAWAY on drain) are in clients/python/tests/test_http2.py,
/// where frames can be made by hand.
@Suite struct HTTP2Tests {
    @Test func curlSpeaksH2cAndH2OverTLSAndTheUpstreamHearsHTTP11() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([leaf])) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}", "POST /upload", "GET /bytes/{n}"]))
            let port = try #require(gw.tlsPort)
            // h2c with prior knowledge: the raw query arrives byte-exact, and http is the scheme.
            let plain = try await pki.curl(["--http2-prior-knowledge", gw.url + "/items/7?q=%2F&x", "-w", "|%{http_version}"])
            #expect(plain.status == 0, "\(plain.stderr)")
            let (plainBody, plainVersion) = split(plain.stdout)
            #expect(plainVersion == "2")
            let echoed = try echoOf(plainBody)
            #expect(echoed.uri == "/items/7?q=%2F&x")
            #expect(values(echoed.headers, "x-forwarded-proto") == ["http"])
            #expect(values(echoed.headers, "host") == ["127.0.0.1:\(gw.port)"])
            // Two requests, one connection.
            let two = try await pki.curl(["--http2-prior-knowledge", gw.url + "/items/1", gw.url + "/items/2", "-w", "|%{num_connects}"])
            #expect(two.stdout.hasSuffix("|0"), "\(two.stdout)")
            // h2 over TLS by ALPN; http/1.1 on the same port for a client that asks for it.
            for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
                let r = try await pki.curl([flag, "https://localhost:\(port)/items/3", "-w", "|%{http_version}"])
                #expect(r.status == 0, "\(flag): \(r.stderr)")
                let (body, v) = split(r.stdout)
                #expect(v == version, "\(flag)")
                #expect(values(try echoOf(body).headers, "x-forwarded-proto") == ["https"])
            }
            let alpn = try await run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-alpn", "h2,http/1.1", "-CAfile", pki.caFile], input: "")
            #expect(alpn.stdout.contains("ALPN protocol: h2"), "\(alpn.stdout.suffix(800))")
            // 6 MiB up and 24 MiB down over h2 (the download read slower than it is produced:
            // the client's window and the gateway's backlog pause the upstream).
            let bytes = pseudoRandomBytes(6 << 20, seed: 7)
            let file = pki.dir + "/upload.bin"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let upload = try await pki.curl(["--http2", "--data-binary", "@" + file, "https://localhost:\(port)/upload"])
            #expect(upload.status == 0, "\(upload.stderr)")
            let sent = try echoOf(upload.stdout)
            #expect(sent.bodyBytes == bytes.count)
            #expect(sent.bodyHash == fnv1a(bytes))
            let out = pki.dir + "/download.bin"
            let download = try await pki.curl(["--http2", "--limit-rate", "40M", "-o", out, "-w", "%{size_download}|%{http_version}", "https://localhost:\(port)/bytes/\(24 << 20)"])
            #expect(download.stdout == "\(24 << 20)|2", "\(download.stderr)")
        }
    }

    @Test func withHTTP2OffTheGatewaySpeaksHTTP11Only() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        var config = tlsConfiguration([leaf])
        config.http2 = false
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let port = try #require(gw.tlsPort)
            let alpn = try await run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-alpn", "h2,http/1.1", "-CAfile", pki.caFile], input: "")
            #expect(alpn.stdout.contains("ALPN protocol: http/1.1"), "\(alpn.stdout.suffix(800))")
            let downgraded = try await pki.curl(["--http2", "https://localhost:\(port)/items/1", "-w", "|%{http_version}"])
            #expect(split(downgraded.stdout).1 == "1.1", "\(downgraded.stdout) \(downgraded.stderr)")
            // The h2c preface is not an HTTP/1.1 request: refused, not proxied.
            let prior = try await pki.curl(["--http2-prior-knowledge", gw.url + "/items/1"])
            #expect(prior.status != 0, "\(prior.stdout)")
        }
    }

    @Test func h2loadRunsManyStreamsPerConnection() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let r = try await run("/usr/bin/h2load", ["-n", "3000", "-c", "3", "-m", "64", gw.url + "/items/1"])
            #expect(r.stdout.contains("3000 succeeded, 0 failed, 0 errored"), "\(r.stdout.suffix(1200)) \(r.stderr)")
            #expect(r.stdout.contains("status codes: 3000 2xx"), "\(r.stdout.suffix(600))")
            #expect(gw.gateway.openConnections.load(ordering: .relaxed) <= 3)
        }
    }

    private func split(_ out: String) -> (String, String) {
        guard let bar = out.lastIndex(of: "|") else { return (out, "") }
        return (String(out[..<bar]), String(out[out.index(after: bar)...]))
    }

    private func echoOf(_ text: String) throws -> (uri: String, headers: [(String, String)], bodyBytes: Int, bodyHash: String, server: String) {
        try echo(HTTPReply(status: 200, headers: [:], body: Data(text.utf8)))
    }
}

/// The pure halves of the HTTP/2 bridge: the HTTP/1.1 head a stream's fields become, and the
/// HTTP/2 response an HTTP/1.1 response becomes.
@Suite struct H2TranslationTests {
    private func head(_ fields: [(String, String)], limit: Int = 1 << 16) -> H2RequestHead {
        var h = H2RequestHead(limit: limit)
        for (n, v) in fields {
            Array(n.utf8).withUnsafeBytes { name in Array(v.utf8).withUnsafeBytes { value in h.add(name: name, value: value) } }
        }
        return h
    }

    @Test func fieldsBecomeAnHTTP11HeadWithJoinedCookies() {
        let h = head([(":method", "POST"), (":scheme", "https"), (":authority", "api.test"), (":path", "/a?b=%2F"), ("cookie", "a=1"), ("te", "trailers"), ("x-k", "v"), ("cookie", "b=2")])
        let text = String(buffer: h.http1(framing: h.framing(endStream: false))!)
        #expect(text == "POST /a?b=%2F HTTP/1.1\r\nHost: api.test\r\nx-k: v\r\ncookie: a=1; b=2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        // A length from the client is kept; no body on a POST says Content-Length: 0.
        let sized = head([(":method", "PUT"), (":path", "/x"), (":authority", "h"), ("content-length", "5")])
        #expect(String(buffer: sized.http1(framing: sized.framing(endStream: false))!) == "PUT /x HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\nConnection: close\r\n\r\n")
        let empty = head([(":method", "POST"), (":path", "/x"), (":authority", "h")])
        #expect(String(buffer: empty.http1(framing: .none)!) == "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        let get = head([(":method", "GET"), (":path", "/x"), (":authority", "h"), ("host", "other")])
        #expect(String(buffer: get.http1(framing: .none)!) == "GET /x HTTP/1.1\r\nhost: other\r\nConnection: close\r\n\r\n")
        // CONNECT carries no path: not something the gateway proxies.
        #expect(head([(":method", "CONNECT"), (":authority", "h:443")]).http1(framing: .chunked) == nil)
    }

    @Test func oversizedListsAndUnsafeBytesAreFlagged() {
        let big = head([(":method", "GET"), (":path", "/"), ("x", String(repeating: "v", count: 2000))], limit: 1000)
        #expect(big.tooLarge)
        let injected = head([(":method", "GET"), (":path", "/"), ("x", "a\r\nEvil: 1")])
        #expect(injected.invalid)
    }

    private func translate(_ chunks: [String], head: Bool = false) -> (status: Int?, fields: [String], body: String, complete: Bool, failed: Bool, trailers: [String]) {
        var t = H2ResponseTranslator(requestWasHEAD: head)
        var status: Int?
        var fields: [String] = []
        var trailers: [String] = []
        var body = ""
        for c in chunks {
            t.consume(ByteBuffer(string: c)) { event in
                switch event {
                case .head(let s, let list):
                    status = s
                    #expect(list.strings.first.map { $0.name + "=" + $0.value } == ":status=\(s)")
                    fields = list.strings.dropFirst().map { $0.name + "=" + $0.value }
                case .data(let d): body += String(buffer: d)
                case .trailers(let list):
                    trailers += list.strings.map { $0.name + "=" + $0.value }
                }
            }
        }
        return (status, fields, body, t.isComplete, t.failed, trailers)
    }

    @Test func chunkedTrailersBecomeHTTP2TrailersWithoutTheForbiddenOnes() {
        let r = translate([
            "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nGrpc-Status: 5\r\ngrpc-message:  not found \r\n",
            "Content-Length: 9\r\nX-Trace: t\r\n\r\n",
        ])
        #expect(r.body == "abc" && r.complete && !r.failed)
        #expect(r.trailers == ["grpc-status=5", "grpc-message=not found", "x-trace=t"])
        // No trailer section: no trailers event.
        #expect(translate(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]).trailers.isEmpty)
    }

    @Test func http11RequestsBecomeHTTP2Requests() {
        var t = H2UpstreamRequestTranslator()
        var events: [String] = []
        let wire = "POST /pkg.Svc/Call?x=1 HTTP/1.1\r\nHost: api.example:8080\r\nContent-Type: application/grpc\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\nHEAD /h HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"
        // Split at every third byte: heads and chunks arrive in pieces.
        let bytes = Array(wire.utf8)
        var i = 0
        while i < bytes.count {
            let piece = ByteBuffer(bytes: bytes[i..<min(i + 3, bytes.count)])
            i += 3
            t.consume(piece) { event in
                switch event {
                case .head(let list, let hasBody, let isHEAD):
                    let p = list.strings.filter { $0.name.hasPrefix(":") }.map { $0.name + "=" + $0.value }
                    let f = list.strings.filter { !$0.name.hasPrefix(":") }.map { $0.name + "=" + $0.value }
                    events.append("head \(p.joined(separator: " ")) | \(f.joined(separator: " ")) body=\(hasBody) head=\(isHEAD)")
                case .data(let d):
                    if events.last?.hasPrefix("data ") == true { events[events.count - 1] += String(buffer: d) } else { events.append("data " + String(buffer: d)) }
                case .end: events.append("end")
                }
            }
        }
        #expect(!t.failed)
        #expect(events == [
            "head :method=POST :scheme=http :authority=api.example:8080 :path=/pkg.Svc/Call?x=1 | content-type=application/grpc x-forwarded-for=127.0.0.1 te=trailers body=true head=false",
            "data hello", "end",
            "head :method=GET :scheme=http :authority=h :path=/next | te=trailers body=false head=false",
            "head :method=HEAD :scheme=http :authority=h :path=/h | content-length=2 te=trailers body=true head=true",
            "data ok", "end",
        ])
    }

    @Test func http2ResponsesBecomeHTTP11ResponsesWithTrailersInTheChunkedBody() {
        func s(_ b: ByteBuffer?) -> String { b.map { String(buffer: $0) } ?? "nil" }
        let grpcFields = [("content-type", "application/grpc")]
        var w = H2UpstreamResponseWriter()
        // A head field by field, as nghttp2 reports it.
        func head(status: Int, fields: [(String, String)], endStream: Bool, requestWasHEAD: Bool) -> ByteBuffer {
            w.start(status: status)
            for (n, v) in fields { w.field(name: n.utf8, value: v.utf8) }
            return w.finish(endStream: endStream, requestWasHEAD: requestWasHEAD)
        }
        #expect(s(head(status: 200, fields: grpcFields, endStream: false, requestWasHEAD: false))
            == "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n")
        #expect(s(w.data(ByteBuffer(string: "abc"))) == "3\r\nabc\r\n")
        w.trailer(name: "grpc-status".utf8, value: "0".utf8)
        #expect(s(w.end()) == "0\r\ngrpc-status: 0\r\n\r\n")
        // Trailers-only (the HEADERS ended the stream): an empty body of known length.
        #expect(s(head(status: 200, fields: grpcFields, endStream: true, requestWasHEAD: false))
            == "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n")
        #expect(w.end() == nil)
        // A length the instance gave is kept, and the body passes as it is.
        #expect(s(head(status: 404, fields: [("content-length", "2")], endStream: false, requestWasHEAD: false))
            == "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n")
        #expect(s(w.data(ByteBuffer(string: "no"))) == "no")
        // 204 and HEAD: no framing header at all.
        #expect(s(head(status: 204, fields: [], endStream: true, requestWasHEAD: false)) == "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(s(head(status: 200, fields: [], endStream: true, requestWasHEAD: true)) == "HTTP/1.1 200 OK\r\n\r\n")
    }

    @Test func responsesLoseTheirHTTP11FramingAndKnowWhenTheyAreComplete() {
        // Chunked (the gateway's own re-framing), split anywhere, interim 100 skipped.
        let chunked = translate(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nX-Request-ID: r\r\n\r\n5\r\nhel", "lo\r\n6\r\n world\r\n0\r\n\r\n"])
        #expect(chunked.status == 201)
        #expect(chunked.fields == ["content-type=text/plain", "x-request-id=r"])
        #expect(chunked.body == "hello world" && chunked.complete)
        // A length: complete once that many bytes came; cut short it is not.
        #expect(translate(["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", "cd"]).complete)
        let cut = translate(["HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"])
        #expect(cut.body == "ab" && !cut.complete)
        // A head split across writes, a HEAD response, a 204.
        #expect(translate(["HTTP/1.1 200 OK\r\nContent-Le", "ngth: 0\r\n\r\n"]).complete)
        #expect(translate(["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"], head: true).complete)
        #expect(translate(["HTTP/1.1 204 No Content\r\n\r\n"]).complete)
        #expect(translate(["nonsense\r\n\r\n"]).failed)
    }
}
