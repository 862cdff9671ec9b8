import Foundation
import JWTKit
import Logging
import Synchronization
import NIOCore
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// A throwaway RSA key made for these tests only (openssl genpkey, 2048 bits); it protects nothing.
let testRSAPrivateKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCLzhsb+Pz+1NpW
xOqlNw7veeUj1cmkyR0sbAx8Jh0xuY6Xs7jlwDVKuV3ml+u7fYaAr2PuxPbRUm7I
I3+mDoNnOCw0gYX3TaRzEa0ZeME1d/V/zmfLmys66U+CPklGASWdofn1Eevl0zgX
bzWlvqSS3g9aHDCVlRPbTMrFth7Lk3gjPFlx8xJaI/ol01dG6kORL0OyGeiIgbTa
iaMitDLuCDM7mIlhGI4Nwlwl6OfCzjfSWp4R1ngRkCM6mE/HKQV7SSWppf8vElsN
xrpB1lDahu5j6F7bWQ+MFatoUjgMAM7QgxwYQ2fDs9m+oxSA1hplcY0nsxsvwh+H
nKQsZC5RAgMBAAECggEAAPIyncRYFfNjzN2FRvvx5m35Pn5WYH6Z63CJvxdU8D60
t9MYB7n+wlQxzfsuNbUaQWmub/G2R+FabZFL7lg/zGWFaw+LVAqa98phVQBLsmxu
5WAEtMyGhN4KUzPPtCES25e6hM2LvqDoysPOZaI+I95L1UzGiWSaX0wMPT1HxRHm
WPmpQWYBVajjytdVZNQm7f8ziaOoNrMROSNWYRYZ82qwkzfgD8T0qSLhJcqyzG7T
kYaIHwR3vvzQX/ilMoxxXZkWQKpHBwfsY3IKnBzSFux1TydDxHgbyv2i9/PqzvoM
gd9/xmt+xmX3H0WkWt6YyS6JVb1IDfcqvvwXzUAaFwKBgQDCpMyGVp/ESsWTu3YH
ykpiy381/SAHMBI51IWWf/rguG5FjoKwF4uHY5OX2bFY53N7jbaJDrxNy4nodYHL
ZZoFie9cKalUfuT7kBzjg8/aC1bDDvt5qCXudWqWVQkJFwTiVCXZyEqCl6OK1QHf
HvXtMhuVc8RYdi8xiW20HnVUmwKBgQC33/urPmLBaP95VKVUAs2eTiBN3wBQi1uc
YlZLTwmIvzBM+LsQClWnFKhl0oLVfcWFhF3dSAeKsjg9M+dgMUd5IwUFYtHXPsfT
4LLBAeO2vY4fbyWCW/c8KS4i4I5Mvs6e5NauAwuK5cq9mmWuTf08n/T733Iy2lkV
u+UtCtBZgwKBgQCxIfqCsqhYoVcmt22Vb1G8kMam4kFYaTXc7PvZV4R/JzgrEqL6
D6NJxaPWiCTt7Eva/79DAWb6QSWyp+VDraW6LqnmrH9NxuEp0h+IKTdpjfIaNzNB
pnVGihJC1wYPAKTQN5XumGi+abNKL8ixPWK+xl/15VGk04DlStTMGv/ZywKBgQCK
W84h4wWoh3uFLr5g4uMZ9au1LNItyU8b85r/e++uqD6ODLOltEETQiYcyDSOtN8G
Qr3mniaepNBQrVezOCGR81n53YwMrT7sHa4kMWnJvgTNfnL5Dn6RFGOU9ufcs88C
HSu1MLFkyNivpxhP+ntNPQe450AlJ8vU4Nfn9rUkRQKBgBq6tzICG09djrMMUi8h
V6qaeKkjucxetzWOLbZF0vxapxgiMQGiaFLh9P+/nYakTkkYW31Xv5uTlRvd6gU9
z9kcRUe88zR9rUc6n6EJ+NJt8ttYK7rdvgBHiZ9HwlQkPjzIq/XcYnym2vdE82Pi
p2kZ9hYRJg/hztM3MvDkyKAA
-----END PRIVATE KEY-----
"""

/// The claims the tests sign.
struct TestClaims: JWTPayload {
    var sub: SubjectClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iss: IssuerClaim?
    var aud: AudienceClaim?
    func verify(using algorithm: some JWTAlgorithm) async throws {}

    static func valid(_ subject: String = "user-7", expiresIn: TimeInterval = 3600) -> TestClaims {
        TestClaims(sub: .init(value: subject), exp: .init(value: Date().addingTimeInterval(expiresIn)))
    }
}

/// Writes `text` to a new temporary file and returns its path.
func temporaryFile(_ text: String, name: String = "secret") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-auth-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
}

/// base64url of raw bytes, for JWKS documents and hand-made tokens.
func base64url(_ data: Data) -> String {
    data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

/// A provider that answers only after suspending, and counts what it saw.
actor SlowTeamAuth: GatewayAuthProvider {
    private(set) var asked = 0

    nonisolated func authenticate(_ request: AuthRequest) async -> AuthDecision {
        await count()
        await Task.yield()
        return request.header("X-Team") == "core" ? .allow(subject: "team-core") : .deny(.unauthorized("an X-Team header is required", scheme: "Team"))
    }

    private func count() { asked += 1 }
}

/// A provider that never answers within any timeout a test sets.
struct SilentAuth: GatewayAuthProvider {
    func authenticate(_ request: AuthRequest) async -> AuthDecision {
        try? await Task.sleep(for: .seconds(5))
        return .allow(subject: nil)
    }
}

private func errorCode(_ reply: HTTPReply) -> String? {
    ((try? reply.json())?["error"] as? [String: Any])?["code"] as? String
}

@Suite struct AuthTests {
    // MARK: API keys

    @Test func apiKeysGuardRoutesWhilePublicRoutesAndHealthStayOpen() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let keys = try temporaryFile("# deploy keys\nci:k-ci-0123456789\n\nk-bare-abcdef\n")
        var config = GatewayConfiguration()
        config.auth = try APIKeyAuthProvider(keysFile: keys, logger: .init(label: "test"))
        try await withLiveGateway(configuration: config) { gw in
            var reg = try registration(up, ["GET /items/{id}", "POST /items"])
            reg.routes.append(RouteSpec(methods: ["GET"], path: "/open", isPublic: true))
            try await gw.register("items", "a", reg)

            let none = try await httpRequest(.GET, gw.url + "/items/1")
            #expect(none.status == 401)
            #expect(none.headers.first(name: "WWW-Authenticate") == #"ApiKey realm="tapper""#)
            #expect(errorCode(none) == "unauthorized")
            let wrong = try await httpRequest(.GET, gw.url + "/items/1", headers: [("X-API-Key", "k-ci-0123456788")])
            #expect(wrong.status == 401)
            #expect(wrong.headers.first(name: "WWW-Authenticate")?.contains(#"error="invalid_token""#) == true)
            #expect(up.requestCount == 0)

            // Either header works; the key's name (never the key) goes upstream, a client's own subject is dropped.
            let byHeader = try await httpRequest(.GET, gw.url + "/items/1", headers: [("X-API-Key", "k-ci-0123456789"), ("X-Tapper-Subject", "root")])
            #expect(byHeader.status == 200)
            #expect(values(try echo(byHeader).headers, "x-tapper-subject") == ["ci"])
            let byBearer = try await httpRequest(.GET, gw.url + "/items/1", headers: [("Authorization", "Bearer k-bare-abcdef")])
            #expect(byBearer.status == 200)
            #expect(values(try echo(byBearer).headers, "x-tapper-subject") == ["key-4"])

            // Public route and /health need nothing; no subject is invented for them.
            let open = try await httpRequest(.GET, gw.url + "/open", headers: [("X-Tapper-Subject", "root")])
            #expect(open.status == 200)
            #expect(values(try echo(open).headers, "x-tapper-subject").isEmpty)
            #expect(try await httpRequest(.GET, gw.url + "/health").status == 200)
            #expect(up.requestCount == 3)

            // A refused request with a body is answered and the connection closed; the upstream never sees it.
            let raw = try await RawHTTP.exchange(port: gw.port, ["POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"])
            #expect(raw.status == 401)
            #expect(raw.closed)
            #expect(up.requestCount == 3)
        }
    }

    @Test func apiKeyFileRotatesWithoutRestart() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let keys = try temporaryFile("old-key-123456\n")
        var config = GatewayConfiguration()
        // Checked on every request here (a second apart by default), so the test needs no waiting.
        config.auth = try APIKeyAuthProvider(keysFile: keys, checkInterval: .zero, logger: .init(label: "test"))
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("items", "a", try registration(up, ["GET /items"]))
            #expect(try await httpRequest(.GET, gw.url + "/items", headers: [("X-API-Key", "old-key-123456")]).status == 200)
            try Data("new-key-654321\n".utf8).write(to: URL(fileURLWithPath: keys))
            #expect(try await httpRequest(.GET, gw.url + "/items", headers: [("X-API-Key", "new-key-654321")]).status == 200)
            #expect(try await httpRequest(.GET, gw.url + "/items", headers: [("X-API-Key", "old-key-123456")]).status == 401)
            // A broken rewrite keeps the last good keys.
            try Data("# nothing here\n".utf8).write(to: URL(fileURLWithPath: keys))
            #expect(try await httpRequest(.GET, gw.url + "/items", headers: [("X-API-Key", "new-key-654321")]).status == 200)
        }
    }

    @Test func apiKeyFileFormat() throws {
        let keys = try APIKeyAuthProvider.Keys(parsing: "a:one\r\n  # c\nb-2: two \nthree\nurl:http://x:1\n")
        #expect(keys.entries.map(\.name) == ["a", "b-2", "key-4", "url"])
        #expect(keys.entries.map(\.key) == ["one", "two", "three", "http://x:1"])
        #expect(throws: ReloadingFileError.self) { try APIKeyAuthProvider.Keys(parsing: "# only comments\n\n") }
        #expect(throws: ReloadingFileError.self) { try APIKeyAuthProvider.Keys(parsing: "name:two words\n") }
    }

    // MARK: JWT

    /// Runs `body` with a gateway whose jwt provider reads `keyFile`, routing GET /me to `up`.
    private func withJWTGateway(
        _ up: FakeUpstream, keyFile: String, algorithm: JWTAuthProvider.Algorithm? = nil, rules: TokenClaimRules = .init(),
        _ body: @escaping @Sendable (LiveGateway) async throws -> Void
    ) async throws {
        var config = GatewayConfiguration()
        config.auth = try JWTAuthProvider(keyFile: keyFile, algorithm: algorithm, rules: rules, logger: .init(label: "test"))
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("me", "a", try registration(up, ["GET /me"]))
            try await body(gw)
        }
    }

    private func get(_ gw: LiveGateway, token: String?) async throws -> HTTPReply {
        try await httpRequest(.GET, gw.url + "/me", headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }

    @Test func hs256TokensAreCheckedForSignatureExpiryNotBeforeIssuerAndAudience() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let secret = "an-hs256-secret-of-at-least-32-bytes!"
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: Data(secret.utf8)), digestAlgorithm: .sha256)
        let other = JWTKeyCollection()
        await other.add(hmac: HMACKey(from: Data("a-different-secret-of-32-bytes-or-more".utf8)), digestAlgorithm: .sha256)
        let rules = TokenClaimRules(issuer: "https://id.example", audiences: ["orders", "billing"], leewaySeconds: 5)
        let base = TestClaims(sub: "alice", exp: .init(value: Date().addingTimeInterval(600)), iss: "https://id.example", aud: "billing")
        try await withJWTGateway(up, keyFile: try temporaryFile(secret), rules: rules) { gw in
            let ok = try await get(gw, token: try await signer.sign(base))
            #expect(ok.status == 200, "\(ok.text)")
            #expect(values(try echo(ok).headers, "x-tapper-subject") == ["alice"])

            var expired = base
            expired.exp = .init(value: Date().addingTimeInterval(-60))
            var early = base
            early.nbf = .init(value: Date().addingTimeInterval(120))
            var issuer = base
            issuer.iss = "https://evil.example"
            var audience = base
            audience.aud = "shipping"
            var noExpiry = base
            noExpiry.exp = nil
            let cases: [(String, String?)] = [
                ("no token", nil),
                ("the token has expired", try await signer.sign(expired)),
                ("the token is not valid yet (nbf)", try await signer.sign(early)),
                ("the token was not issued by the expected issuer", try await signer.sign(issuer)),
                ("the token is not meant for this audience", try await signer.sign(audience)),
                ("the token has no expiry (exp)", try await signer.sign(noExpiry)),
                ("the token's signature is not valid", try await other.sign(base)),
                ("the bearer token is not a JWT", "not-a-jwt"),
            ]
            for (why, token) in cases {
                let reply = try await get(gw, token: token)
                #expect(reply.status == 401, "\(why)")
                #expect(reply.headers.first(name: "WWW-Authenticate")?.hasPrefix(#"Bearer realm="tapper""#) == true, "\(why)")
                if token != nil { #expect(reply.errorMessage == why) }
            }
            // "alg": "none" with the signature cut off is refused before anything else.
            let header = base64url(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
            let payload = base64url(try JSONEncoder().encode(base))
            let unsigned = try await get(gw, token: "\(header).\(payload).")
            #expect(unsigned.status == 401)
            #expect(unsigned.errorMessage == "tokens signed with none are not accepted")
            #expect(up.requestCount == 1)
        }
    }

    @Test func rs256TokensVerifyWithAPublicKeyAndAnHS256ForgeryWithThatKeyFails() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let priv = try Insecure.RSA.PrivateKey(pem: testRSAPrivateKeyPEM)
        let publicPEM = priv.publicKey.pemRepresentation
        let signer = JWTKeyCollection()
        await signer.add(rsa: priv, digestAlgorithm: .sha256)
        // The classic confusion attack: sign HS256 with the public key's PEM as the HMAC secret.
        let forger = JWTKeyCollection()
        await forger.add(hmac: HMACKey(from: Data(publicPEM.utf8)), digestAlgorithm: .sha256)
        try await withJWTGateway(up, keyFile: try temporaryFile(publicPEM), algorithm: .rs256) { gw in
            #expect(try await get(gw, token: try await signer.sign(TestClaims.valid("rsa-user"))).status == 200)
            let forged = try await get(gw, token: try await forger.sign(TestClaims.valid("rsa-user")))
            #expect(forged.status == 401)
            #expect(forged.errorMessage == "tokens signed with HS256 are not accepted")
            #expect(up.requestCount == 1)
        }
    }

    @Test func es256AndJWKSFilesWithKeyIDs() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let ec = ES256PrivateKey()
        let rsa = try Insecure.RSA.PrivateKey(pem: testRSAPrivateKeyPEM)

        // ES256 from a PEM public key.
        let ecSigner = JWTKeyCollection()
        await ecSigner.add(ecdsa: ec)
        try await withJWTGateway(up, keyFile: try temporaryFile(ec.publicKey.pemRepresentation)) { gw in
            let reply = try await get(gw, token: try await ecSigner.sign(TestClaims.valid("ec-user")))
            #expect(reply.status == 200)
            #expect(values(try echo(reply).headers, "x-tapper-subject") == ["ec-user"])
        }

        // A JWKS document with one RSA and one EC key, picked by kid.
        let (n, e) = try rsa.publicKey.getKeyPrimitives()
        let xy = try #require(ec.publicKey.parameters)
        let jwks = """
            {"keys": [
              {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": "\(base64url(n))", "e": "\(base64url(e))"},
              {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": "\(xy.x)", "y": "\(xy.y)"}
            ]}
            """
        let kidSigner = JWTKeyCollection()
        await kidSigner.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
        await kidSigner.add(ecdsa: ec, kid: "ec-1")
        let stranger = JWTKeyCollection()
        await stranger.add(ecdsa: ES256PrivateKey(), kid: "ec-1")
        try await withJWTGateway(up, keyFile: try temporaryFile(jwks, name: "jwks.json")) { gw in
            let byRSA = try await kidSigner.sign(TestClaims.valid("r"), kid: JWKIdentifier(string: "rsa-1"))
            let byEC = try await kidSigner.sign(TestClaims.valid("e"), kid: JWKIdentifier(string: "ec-1"))
            let byStranger = try await stranger.sign(TestClaims.valid("x"), kid: JWKIdentifier(string: "ec-1"))
            #expect(try await get(gw, token: byRSA).status == 200)
            #expect(try await get(gw, token: byEC).status == 200)
            #expect(try await get(gw, token: byStranger).status == 401)
        }
    }

    @Test func afterItsFirstTokenAKeyIsCheckedWithoutSuspending() async throws {
        let secret = "an-hs256-secret-of-at-least-32-bytes!"
        let signer = JWTKeyCollection()
        await signer.add(hmac: HMACKey(from: Data(secret.utf8)), digestAlgorithm: .sha256)
        // A fixed clock: the token expires at 1,000,000 s; leeway 0.
        let clock = Mutex(999_000.0)
        let keyFile = try temporaryFile(secret)
        let provider = try JWTAuthProvider(
            keyFile: keyFile, rules: TokenClaimRules(leewaySeconds: 0), logger: Logger(label: "test"),
            now: { Date(timeIntervalSince1970: clock.withLock { $0 }) }, checkInterval: .zero
        )
        let token = try await signer.sign(TestClaims(sub: "bob", exp: .init(value: Date(timeIntervalSince1970: 1_000_000))))
        let request = AuthRequest(method: "GET", target: "/me?x=1", headers: [("Host", "x"), ("authorization", "Bearer \(token)")])
        #expect(request.path == "/me")
        #expect(request.header("AUTHORIZATION") == "Bearer \(token)")
        // Malformed or missing credentials never need a key.
        #expect(provider.decideImmediately(AuthRequest(method: "GET", target: "/me", headers: [])) != nil)
        #expect(provider.decideImmediately(request) == nil)
        #expect(await provider.authenticate(request) == .allow(subject: "bob"))
        #expect(provider.decideImmediately(request) == .allow(subject: "bob"))
        clock.withLock { $0 = 1_000_000 }
        #expect(provider.decideImmediately(request) == .deny(.unauthorized("the token has expired", invalidToken: true)))
        // A kid the key file does not name shares the default key's entry (no unbounded cache).
        let other = try await signer.sign(TestClaims(sub: "eve", exp: .init(value: Date(timeIntervalSince1970: 2_000_000))), kid: JWKIdentifier(string: "random-kid"))
        let eve = AuthRequest(method: "GET", target: "/me", headers: [("Authorization", "Bearer \(other)")])
        #expect(provider.decideImmediately(eve) == .allow(subject: "eve"))
        // A rotated secret: tokens verified with the old one (cached or not) no longer pass.
        try Data("a-completely-new-secret-for-hs256-signing".utf8).write(to: URL(fileURLWithPath: keyFile))
        #expect(provider.decideImmediately(eve) == nil)
        #expect(await provider.authenticate(eve) == .deny(.unauthorized("the token's signature is not valid", invalidToken: true)))
    }

    @Test func unusableKeyFilesAreRefusedUpFront() throws {
        let logger = Logger(label: "test")
        #expect(throws: ReloadingFileError.self) { try JWTAuthProvider(keyFile: try temporaryFile(testRSAPrivateKeyPEM), logger: logger) }
        #expect(throws: ReloadingFileError.self) { try JWTAuthProvider(keyFile: try temporaryFile("too-short"), logger: logger) }
        #expect(throws: ReloadingFileError.self) { try JWTAuthProvider(keyFile: try temporaryFile("x-secret-long-enough-for-hs256-use!!"), algorithm: .rs256, logger: logger) }
        #expect(throws: ReloadingFileError.self) { try JWTAuthProvider(keyFile: try temporaryFile(#"{"keys": []}"#), logger: logger) }
        #expect(throws: ReloadingFileError.self) { try JWTAuthProvider(keyFile: "/nonexistent/tapper-key", logger: logger) }
    }

    // MARK: custom providers

    @Test func anAsynchronousProviderHoldsTheRequestAndItsBodyUntilItDecides() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        let auth = SlowTeamAuth()
        var config = GatewayConfiguration()
        config.auth = auth
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("jobs", "a", try registration(up, ["POST /jobs", "GET /jobs/{id:int}"]))
            let body = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            let allowed = try await httpRequest(.POST, gw.url + "/jobs", body: body, headers: [("X-Team", "core")])
            #expect(allowed.status == 200)
            let seen = try echo(allowed)
            #expect(seen.bodyBytes == body.count)
            #expect(seen.bodyHash == fnv1a(body))
            #expect(values(seen.headers, "x-tapper-subject") == ["team-core"])

            let refused = try await httpRequest(.GET, gw.url + "/jobs/3")
            #expect(refused.status == 401)
            #expect(refused.headers.first(name: "WWW-Authenticate") == #"Team realm="tapper""#)
            // A refused client that waits for 100 Continue never gets it, and never reaches the upstream.
            let raw = try await RawHTTP.exchange(port: gw.port, ["POST /jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"], timeout: .seconds(3))
            #expect(raw.status == 401, "\(raw.text)")
            #expect(!raw.text.contains("100 Continue"))
            #expect(up.requestCount == 1)
            #expect(await auth.asked == 3)
        }
    }

    @Test func aProviderThatNeverAnswersIs504AtTheTimeout() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        var config = GatewayConfiguration()
        config.auth = SilentAuth()
        config.upstreamTimeout = .milliseconds(300)
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("jobs", "a", try registration(up, ["GET /jobs"]))
            let reply = try await httpRequest(.GET, gw.url + "/jobs")
            #expect(reply.status == 504)
            #expect(errorCode(reply) == "auth_timeout")
            #expect(up.requestCount == 0)
        }
    }

    // MARK: admin listener

    @Test func adminPortMovesTheAdminEndpointsOffTheMainListener() async throws {
        let up = try await FakeUpstream()
        defer { Task { await up.stop() } }
        var config = GatewayConfiguration()
        config.adminPort = 0
        try await withLiveGateway(configuration: config) { gw in
            try await gw.register("users", "a", try registration(up, ["GET /users/{id}"]))
            let admin = try #require(gw.adminURL)
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/status").status == 404)
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/routes").status == 404)
            #expect(try await httpRequest(.GET, gw.url + "/health").status == 200)
            #expect(try await httpRequest(.GET, gw.url + "/users/1").status == 200)
            let status = try await httpRequest(.GET, admin + "/_tapper/status")
            #expect(status.status == 200)
            #expect(status.text.contains("users"))
            #expect(try await httpRequest(.GET, admin + "/_tapper/metrics").status == 200)
            #expect(try await httpRequest(.GET, admin + "/health").status == 200)
            // The admin listener proxies nothing.
            #expect(try await httpRequest(.GET, admin + "/users/1").status == 404)
            #expect(up.requestCount == 1)
        }
    }
}
