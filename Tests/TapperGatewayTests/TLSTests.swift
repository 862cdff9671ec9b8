import Foundation
import Glibc
import Synchronization
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// HTTPS on the gateway's TLS listener, driven by real clients: curl and openssl s_client
/// (Debian's, the same OpenSSL), with certificates made by the openssl command for each test.
@Suite struct TLSTests {
    @Test func httpsIsProxiedAndTheUpstreamHearsHTTPS() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost", "a.test"])
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([leaf])) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}", "POST /upload"]))
            let port = try #require(gw.tlsPort)
            let reply = try await pki.curl(["--http1.1", "https://localhost:\(port)/items/7?q=%2F"])
            #expect(reply.status == 0, "\(reply.stderr)")
            let body = try echoOf(reply.stdout)
            #expect(body.uri == "/items/7?q=%2F")
            #expect(values(body.headers, "x-forwarded-proto") == ["https"])
            // The plain listener keeps working beside it, and says http.
            let plain = try await httpRequest(.GET, gw.url + "/items/8")
            #expect(plain.status == 200)
            #expect(values(try echo(plain).headers, "x-forwarded-proto") == ["http"])
            // Several requests on one TLS connection (keep-alive).
            let two = try await pki.curl(["--http1.1", "https://localhost:\(port)/items/1", "https://localhost:\(port)/items/2", "-w", "|%{num_connects}"])
            #expect(two.status == 0, "\(two.stderr)")
            #expect(two.stdout.hasSuffix("|0"), "the second request reuses the connection: \(two.stdout)")
        }
    }

    @Test func largeBodiesCrossTLSBothWaysIntact() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([leaf])) { gw in
            try await gw.register("files", "a", registration(up, ["POST /upload", "GET /bytes/{n}"]))
            let port = try #require(gw.tlsPort)
            // 6 MiB up: many records, and the gateway's upstream writes push back on its TLS reads.
            let bytes = pseudoRandomBytes(6 << 20, seed: 42)
            let file = pki.dir + "/upload.bin"
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let upload = try await pki.curl(["--http1.1", "--data-binary", "@" + file, "-H", "Content-Type: application/octet-stream", "https://localhost:\(port)/upload"])
            #expect(upload.status == 0, "\(upload.stderr)")
            let echoed = try echoOf(upload.stdout)
            #expect(echoed.bodyBytes == bytes.count)
            #expect(echoed.bodyHash == fnv1a(bytes))
            // 24 MiB down: the client reads slower than loopback delivers, so TLS writes wait.
            let out = pki.dir + "/download.bin"
            let download = try await pki.curl(["--http1.1", "--limit-rate", "40M", "-o", out, "-w", "%{size_download}", "https://localhost:\(port)/bytes/\(24 << 20)"])
            #expect(download.status == 0, "\(download.stderr)")
            #expect(download.stdout == "\(24 << 20)")
            let size = (try FileManager.default.attributesOfItem(atPath: out)[.size] as? NSNumber)?.intValue
            #expect(size == 24 << 20)
        }
    }

    @Test func sniPicksTheCertificateAndUnknownNamesGetTheDefault() async throws {
        let pki = try await TestPKI()
        let a = try await pki.leaf("a", names: ["a.test", "localhost"])
        let b = try await pki.leaf("b", names: ["*.b.test"])
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([a, b])) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let port = try #require(gw.tlsPort)
            for name in ["a.test", "api.b.test", "x.b.test"] {
                // curl checks the certificate against the name: it passes only with the right one.
                let r = try await pki.curl(["--http1.1", "--resolve", "\(name):\(port):127.0.0.1", "https://\(name):\(port)/items/1"])
                #expect(r.status == 0, "\(name): \(r.stderr)")
            }
            let subject = try await pki.servedSubject(port: port, serverName: "api.b.test")
            #expect(subject == "subject=CN = b", "the *.b.test certificate: \(subject)")
            // No certificate for this name: the default one is served (and curl refuses it).
            let unknown = try await pki.curl(["--http1.1", "--resolve", "other.test:\(port):127.0.0.1", "https://other.test:\(port)/items/1"])
            #expect(unknown.status == 60, "curl: certificate does not match the name: \(unknown.stderr)")
            #expect(try await pki.servedSubject(port: port, serverName: "other.test").contains("CN = a"))
            #expect(gw.gateway.tlsStatus?.certificates.map(\.names) == [["a.test", "localhost"], ["*.b.test"]])
        }
    }

    @Test func onlyTLS12AndLaterAreSpoken() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        try await withLiveGateway(configuration: tlsConfiguration([leaf])) { gw in
            let port = try #require(gw.tlsPort)
            for (flag, ok) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
                let r = try await run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", flag, "-CAfile", pki.caFile, "-servername", "localhost"], input: "")
                let negotiated = r.stdout.contains("Verify return code: 0 (ok)") && !r.stdout.contains("Cipher is (NONE)")
                #expect(negotiated == ok, "\(flag): \(r.stdout.suffix(600)) \(r.stderr.suffix(300))")
            }
            // ALPN: h2 when the client offers it, else http/1.1.
            for (offer, chosen) in [("h2,http/1.1", "h2"), ("http/1.1", "http/1.1")] {
                let alpn = try await run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-alpn", offer, "-CAfile", pki.caFile], input: "")
                #expect(alpn.stdout.contains("ALPN protocol: \(chosen)"), "\(offer): \(alpn.stdout.suffix(800))")
            }
        }
    }

    @Test func garbageAndPlainHTTPOnTheTLSPortAreDroppedAndOthersAreServed() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([leaf])) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let port = try #require(gw.tlsPort)
            // Plain HTTP to the HTTPS port: not a ClientHello, the connection is closed.
            let raw = try await RawHTTP.exchange(port: port, ["GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"])
            #expect(!raw.text.contains("200"), "\(raw.text)")
            // A client that stops halfway through its handshake is left behind; others go on.
            let stalled = try RawSocket(port: port)
            try stalled.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
            let ok = try await pki.curl(["--http1.1", "https://localhost:\(port)/items/1"])
            #expect(ok.status == 0, "\(ok.stderr)")
            stalled.close()
            #expect(try await pki.curl(["--http1.1", "https://localhost:\(port)/items/2"]).status == 0)
        }
    }

    @Test func certificatesRotateUnderLoadWithoutAFailedRequest() async throws {
        let pki = try await TestPKI()
        let old = try await pki.leaf("old", names: ["localhost", "old.test"])
        let new = try await pki.leaf("new", names: ["localhost", "new.test"])
        // The listener serves from these paths; the rotation writes new contents into them.
        let live = TLSCertificateFiles(certificate: pki.dir + "/live.pem", key: pki.dir + "/live.key")
        try FileManager.default.copyItem(atPath: old.certificate, toPath: live.certificate)
        try FileManager.default.copyItem(atPath: old.key, toPath: live.key)
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        try await withLiveGateway(configuration: tlsConfiguration([live])) { gw in
            try await gw.register("items", "a", registration(up, ["GET /items/{id}"]))
            let port = try #require(gw.tlsPort)
            let stop = StopFlag()
            // Load: four clients, each making a new connection per request (every one a handshake),
            // two of them over HTTP/1.1 and two over h2.
            async let failures: [String] = withThrowingTaskGroup(of: [String].self) { group in
                for client in 0..<4 {
                    let proto = client % 2 == 0 ? "--http1.1" : "--http2"
                    group.addTask {
                        var failed: [String] = []
                        var count = 0
                        while !stop.isSet || count == 0 {
                            count += 1
                            let r = try await pki.curl([proto, "https://localhost:\(port)/items/\(count)", "https://localhost:\(port)/items/x\(count)"])
                            if r.status != 0 { failed.append("status \(r.status): \(r.stderr)") }
                        }
                        return failed
                    }
                }
                var all: [String] = []
                for try await f in group { all += f }
                return all
            }
            #expect(try await pki.servedSubject(port: port, serverName: "localhost").contains("CN = old"))
            // A renewal that writes the chain first and the key a moment later: the half-written
            // pair does not load (key mismatch) and the old certificate stays until both are new.
            try Data(contentsOf: URL(fileURLWithPath: new.certificate)).write(to: URL(fileURLWithPath: live.certificate), options: .atomic)
            try await poll("the watcher tries the half-written pair") { gw.gateway.tlsReloadFailures >= 1 }
            #expect(try await pki.servedSubject(port: port, serverName: "localhost").contains("CN = old"))
            try Data(contentsOf: URL(fileURLWithPath: new.key)).write(to: URL(fileURLWithPath: live.key), options: .atomic)
            try await poll("the new certificate is served", timeout: .seconds(10)) {
                (try? await pki.servedSubject(port: port, serverName: "localhost"))?.contains("CN = new") == true
            }
            let r = try await pki.curl(["--http1.1", "--resolve", "new.test:\(port):127.0.0.1", "https://new.test:\(port)/items/1"])
            #expect(r.status == 0, "\(r.stderr)")
            stop.set()
            let failed = try await failures
            #expect(failed.isEmpty, "\(failed.prefix(3))")
        }
    }

    @Test func aBadCertificateOrKeyIsNamedAtStartup() async throws {
        let pki = try await TestPKI()
        let leaf = try await pki.leaf("a", names: ["localhost"])
        let other = try await pki.leaf("b", names: ["localhost"])
        #expect(throws: Never.self) { try TLSCertificateFiles.check([leaf]) }
        let missing = TLSCertificateFiles(certificate: pki.dir + "/nope.pem", key: leaf.key)
        let missingError = #expect(throws: (any Error).self) { try TLSCertificateFiles.check([missing]) }
        #expect("\(missingError.map { "\($0)" } ?? "")".contains("nope.pem"))
        let mismatched = TLSCertificateFiles(certificate: leaf.certificate, key: other.key)
        let mismatchError = #expect(throws: (any Error).self) { try TLSCertificateFiles.check([mismatched]) }
        #expect("\(mismatchError.map { "\($0)" } ?? "")".contains("does not match"))
    }
}

func tlsConfiguration(_ pairs: [TLSCertificateFiles]) -> GatewayConfiguration {
    var config = GatewayConfiguration()
    config.tlsPort = 0
    config.tlsCertificates = pairs
    return config
}

private func echoOf(_ text: String) throws -> (uri: String, headers: [(String, String)], bodyBytes: Int, bodyHash: String, server: String) {
    try echo(HTTPReply(status: 200, headers: [:], body: Data(text.utf8)))
}

/// `count` bytes from a 64-bit LCG: the same for the same seed, and nothing a proxy could
/// compress or mistake for framing.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    var state = seed
    for i in bytes.indices {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        bytes[i] = UInt8(truncatingIfNeeded: state >> 56)
    }
    return bytes
}

final class StopFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// A blocking client socket for sending partial handshakes.
final class RawSocket: Sendable {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw TestFailure("connect failed: \(errno)") }
    }
    func send(_ bytes: [UInt8]) throws {
        guard bytes.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { throw TestFailure("send failed") }
    }
    func close() { Glibc.close(fd) }
}

/// Runs a program to completion without blocking a concurrency thread; output goes through
/// files (no pipe can fill up).
func run(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Duration = .seconds(60)) async throws -> (status: Int32, stdout: String, stderr: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err"), inp = dir.appendingPathComponent("in")
    FileManager.default.createFile(atPath: out.path, contents: nil)
    FileManager.default.createFile(atPath: err.path, contents: nil)
    FileManager.default.createFile(atPath: inp.path, contents: Data((input ?? "").utf8))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    p.standardOutput = try FileHandle(forWritingTo: out)
    p.standardError = try FileHandle(forWritingTo: err)
    p.standardInput = try FileHandle(forReadingFrom: inp)
    let status: Int32 = try await withCheckedThrowingContinuation { c in
        p.terminationHandler = { c.resume(returning: $0.terminationStatus) }
        do { try p.run() } catch {
            p.terminationHandler = nil
            c.resume(throwing: error)
        }
    }
    return (status, (try? String(contentsOf: out, encoding: .utf8)) ?? "", (try? String(contentsOf: err, encoding: .utf8)) ?? "")
}

/// A throwaway certificate authority and leaf certificates (ECDSA P-256) made with the openssl
/// command in a temporary folder.
struct TestPKI: Sendable {
    let dir: String
    var caFile: String { dir + "/ca.pem" }

    init() async throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-pki-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try await Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/ca.key", "-out", dir + "/ca.pem",
            "-days", "2", "-subj", "/CN=Tapper Test CA",
        ])
    }

    /// A leaf for `names` signed by the CA; the certificate file holds the chain (leaf, CA).
    func leaf(_ cn: String, names: [String]) async throws -> TLSCertificateFiles {
        let base = dir + "/" + cn
        try await Self.openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=\(cn)"])
        try "subjectAltName=\(names.map { "DNS:\($0)" }.joined(separator: ","))\n".write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try await Self.openssl([
            "x509", "-req", "-in", base + ".csr", "-CA", caFile, "-CAkey", dir + "/ca.key", "-CAcreateserial", "-out", base + ".crt", "-days", "2", "-extfile", base + ".ext",
        ])
        let chain = try String(contentsOfFile: base + ".crt", encoding: .utf8) + String(contentsOfFile: caFile, encoding: .utf8)
        try chain.write(toFile: base + ".pem", atomically: true, encoding: .utf8)
        return TLSCertificateFiles(certificate: base + ".pem", key: base + ".key")
    }

    private static func openssl(_ args: [String]) async throws {
        let r = try await run("/usr/bin/openssl", args)
        guard r.status == 0 else { throw TestFailure("openssl \(args.first ?? ""): \(r.stderr)") }
    }

    /// curl trusting the CA, silent but for errors.
    func curl(_ args: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run("/usr/bin/curl", ["-sS", "--max-time", "20", "--cacert", caFile] + args)
    }

    /// The subject of the certificate served for `serverName` (openssl s_client's line).
    func servedSubject(port: Int, serverName: String) async throws -> String {
        let r = try await run("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", serverName], input: "")
        return r.stdout.split(separator: "\n").first { $0.hasPrefix("subject=") }.map(String.init) ?? "no certificate: \(r.stderr.suffix(300))"
    }
}
