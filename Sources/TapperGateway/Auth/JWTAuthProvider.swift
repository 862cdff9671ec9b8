import Foundation
import JWTKit
import Logging
import Synchronization
import TapperCore

/// `--auth jwt`: a request needs `Authorization: Bearer <JWT>` signed with a configured key
/// (HS256, RS256 or ES256, via jwt-kit) and passing ``TokenClaimRules`` (`exp` required, `nbf`,
/// optional `iss` and `aud`). The token's `sub` goes upstream as `X-Tapper-Subject`.
///
/// Keys come from one file, re-read when it changes: a JWKS document (`{"keys": [...]}`, RSA and
/// EC keys; jwt-kit reads no symmetric JWKs), a PEM
/// public key or certificate (RSA → RS256, P-256 → ES256), or, for HS256, the shared secret
/// itself. The token's `alg` must be one the keys allow: a token cannot pick a weaker or
/// different algorithm (`none`, or HS256 against an RSA key), whatever its header says.
///
/// jwt-kit parses the token and its algorithms check the signature. The first token for a key
/// resolves that key through jwt-kit's `JWTKeyCollection` (an actor, so the request waits for
/// it once); after that, tokens for the key are decided on the I/O thread without suspending.
public final class JWTAuthProvider: GatewayAuthProvider {
    /// The algorithms the gateway accepts.
    public enum Algorithm: String, Sendable, CaseIterable {
        case hs256 = "HS256"
        case rs256 = "RS256"
        case es256 = "ES256"
    }

    /// One version of the key file: its keys, and what tokens may name (worked out once, not per request).
    struct KeyMaterial: Sendable {
        let key: Key
        let algorithms: Set<String>
        let keyIDs: Set<String>

        init(_ key: Key) {
            self.key = key
            algorithms = key.algorithms
            keyIDs = key.keyIDs
        }

        static func parse(_ data: Data, algorithm: Algorithm?) throws -> KeyMaterial { KeyMaterial(try Key.parse(data, algorithm: algorithm)) }

        func collection() async throws -> JWTKeyCollection { try await key.collection() }
    }

    /// The keys of a key file.
    enum Key: Sendable {
        case hmac(HMACKey)
        case rsa(Insecure.RSA.PublicKey)
        case ecdsa(ES256PublicKey)
        case jwks(JWKS)

        /// The `kid`s of a JWKS (a token naming another kid is checked with the default key).
        var keyIDs: Set<String> {
            guard case .jwks(let set) = self else { return [] }
            return Set(set.keys.compactMap { $0.keyIdentifier?.string })
        }

        /// The algorithms tokens verified by these keys may name.
        var algorithms: Set<String> {
            switch self {
            case .hmac: ["HS256"]
            case .rsa: ["RS256"]
            case .ecdsa: ["ES256"]
            case .jwks(let set):
                // A JWK without `alg` may be used with the algorithms its key type allows (of ours).
                Set(
                    set.keys.flatMap { key -> [String] in
                        if let alg = key.algorithm?.rawValue { return Algorithm(rawValue: alg) == nil ? [] : [alg] }
                        if key.keyType == .rsa { return ["RS256"] }
                        if key.keyType == .ecdsa { return ["ES256"] }
                        return []
                    })
            }
        }

        /// Reads a key file: JWKS JSON, PEM public key or certificate, or (with `algorithm` HS256) a secret.
        static func parse(_ data: Data, algorithm: Algorithm?) throws -> Key {
            let text = String(decoding: data, as: UTF8.self)
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("{") {
                let set: JWKS
                do {
                    set = try JSONDecoder().decode(JWKS.self, from: data)
                } catch {
                    throw ReloadingFileError(message: "not a valid JWKS document (\(error))")
                }
                guard !set.keys.isEmpty else { throw ReloadingFileError(message: "the JWKS document has no keys") }
                return .jwks(set)
            }
            if trimmed.hasPrefix("-----BEGIN") {
                if trimmed.contains("PRIVATE KEY") {
                    throw ReloadingFileError(message: "the file holds a private key; the gateway needs only the public key")
                }
                let isCertificate = trimmed.hasPrefix("-----BEGIN CERTIFICATE")
                if algorithm != .es256, let key = try? (isCertificate ? Insecure.RSA.PublicKey(certificatePEM: trimmed) : Insecure.RSA.PublicKey(pem: trimmed)) {
                    return .rsa(key)
                }
                if algorithm != .rs256, let key = try? (isCertificate ? ES256PublicKey(certificate: trimmed) : ES256PublicKey(pem: trimmed)) {
                    return .ecdsa(key)
                }
                throw ReloadingFileError(message: "the PEM is neither an RSA nor a P-256 public key or certificate")
            }
            guard algorithm == nil || algorithm == .hs256 else {
                throw ReloadingFileError(message: "\(algorithm!.rawValue) needs a PEM public key or a JWKS file")
            }
            guard trimmed.utf8.count >= 32 else {
                throw ReloadingFileError(message: "an HS256 secret must be at least 32 bytes")
            }
            return .hmac(HMACKey(from: Data(trimmed.utf8)))
        }

        func collection() async throws -> JWTKeyCollection {
            let keys = JWTKeyCollection()
            switch self {
            case .hmac(let key): await keys.add(hmac: key, digestAlgorithm: .sha256)
            case .rsa(let key): await keys.add(rsa: key, digestAlgorithm: .sha256)
            case .ecdsa(let key): await keys.add(ecdsa: key)
            case .jwks(let set): try await keys.add(jwks: set)
            }
            return keys
        }
    }

    /// The claims the gateway reads; jwt-kit checks the signature, ``TokenClaimRules`` the rest.
    struct Payload: JWTPayload {
        var exp: ExpirationClaim?
        var nbf: NotBeforeClaim?
        var iss: IssuerClaim?
        var aud: AudienceClaim?
        var sub: SubjectClaim?

        /// Time rules are applied afterwards with the provider's clock.
        func verify(using algorithm: some JWTAlgorithm) async throws {}

        var claims: TokenClaimRules.Claims {
            .init(
                expiresAt: exp?.value.timeIntervalSince1970, notBefore: nbf?.value.timeIntervalSince1970, issuer: iss?.value,
                audiences: aud?.value ?? [], subject: sub?.value
            )
        }
    }

    let keyFile: ReloadingFile<KeyMaterial>
    let rules: TokenClaimRules
    let now: @Sendable () -> Date
    private let built = Mutex<(generation: Int, keys: JWTKeyCollection)?>(nil)
    /// The verifying algorithm for each (key file version, kid, alg) seen so far, so a token is
    /// checked on the I/O thread without suspending. Only kids the key file names are keys
    /// here (an unknown kid is the default key), so a client cannot grow it.
    private let resolved = Mutex<(generation: Int, algorithms: [String: any JWTAlgorithm])>((-1, [:]))
    /// Tokens whose signature was verified with this version of the key file, with their claims:
    /// a client sends the same token many times, and the signature (tens of µs for RS256 and
    /// ES256) need not be checked again. The time, issuer and audience rules still apply on every
    /// request. Only correctly signed tokens get in; at ``verifiedCapacity`` it starts over.
    private let verified = Mutex<(generation: Int, tokens: [String: TokenClaimRules.Claims])>((-1, [:]))
    static let verifiedCapacity = 4096

    /// - Parameters:
    ///   - keyFile: JWKS, PEM public key/certificate, or HS256 secret.
    ///   - algorithm: what the key file is for; nil infers it from the file.
    ///   - rules: issuer, audiences and clock-skew leeway.
    ///   - now: the clock `exp` and `nbf` are checked against.
    ///   - checkInterval: how often the key file's modification time is looked at.
    /// - Throws: when the key file cannot be read or used.
    public init(
        keyFile: String, algorithm: Algorithm? = nil, rules: TokenClaimRules = TokenClaimRules(), logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }, checkInterval: Duration = .seconds(1)
    ) throws {
        self.keyFile = try ReloadingFile(path: keyFile, checkInterval: checkInterval, logger: logger) { data in
            try KeyMaterial.parse(data, algorithm: algorithm)
        }
        self.rules = rules
        self.now = now
    }

    /// A token read far enough to pick its key: header, claims, signature and what it signs.
    struct Parsed {
        var token: String
        var alg: String
        var cacheKey: String
        var kid: String?
        var payload: Payload
        var signature: Data
        var signingInput: ArraySlice<UInt8>
    }

    /// Decides on the I/O thread whenever the token's key is already resolved (every request
    /// after the first per key); the first one resolves it in ``authenticate(_:)``.
    public func decideImmediately(_ request: AuthRequest) -> AuthDecision? {
        guard let bearer = request.bearerToken else { return .deny(Self.noToken) }
        let material = keyFile.current()
        if let claims = verified.withLock({ $0.generation == material.generation ? $0.tokens[bearer] : nil }) {
            return check(claims)
        }
        switch parse(bearer, material.value) {
        case .failure(let failure):
            return .deny(failure)
        case .success(let token):
            guard let algorithm = cachedAlgorithm(token.cacheKey, generation: material.generation) else { return nil }
            return decide(token, algorithm, generation: material.generation)
        }
    }

    public func authenticate(_ request: AuthRequest) async -> AuthDecision {
        if let decision = decideImmediately(request) { return decision }
        guard let bearer = request.bearerToken else { return .deny(Self.noToken) }
        let (material, generation) = keyFile.current()
        let token: Parsed
        switch parse(bearer, material) {
        case .failure(let failure): return .deny(failure)
        case .success(let parsed): token = parsed
        }
        let algorithm: any JWTAlgorithm
        do {
            algorithm = try await keys(material, generation).getKey(for: token.kid.flatMap { JWKIdentifier(string: $0) }, alg: token.alg)
        } catch {
            return .deny(Self.badSignature)
        }
        resolved.withLock { r in
            if r.generation != generation { r = (generation, [:]) }
            r.algorithms[token.cacheKey] = algorithm
        }
        return decide(token, algorithm, generation: generation)
    }

    static let badSignature = AuthFailure.unauthorized("the token's signature is not valid", invalidToken: true)
    static let noToken = AuthFailure.unauthorized("this route needs a bearer token (Authorization: Bearer <JWT>)")

    /// Reads a bearer token far enough to pick its key.
    private func parse(_ token: String, _ material: KeyMaterial) -> Result<Parsed, AuthFailure> {
        let bytes = Array(token.utf8)
        // jwt-kit's parser accepts exactly three parts, so what is signed ends at the last dot.
        guard let parsed = try? DefaultJWTParser().parse(bytes, as: Payload.self), let lastDot = bytes.lastIndex(of: UInt8(ascii: "."))
        else {
            return .failure(.unauthorized("the bearer token is not a JWT", invalidToken: true))
        }
        let alg = parsed.header.alg ?? "none"
        guard material.algorithms.contains(alg) else {
            return .failure(.unauthorized("tokens signed with \(Names.printable(alg)) are not accepted", invalidToken: true))
        }
        let kid = parsed.header.kid.flatMap { material.keyIDs.contains($0) ? $0 : nil }
        return .success(
            Parsed(token: token, alg: alg, cacheKey: (kid ?? "") + " " + alg, kid: kid, payload: parsed.payload, signature: parsed.signature, signingInput: bytes[..<lastDot])
        )
    }

    private func decide(_ token: Parsed, _ algorithm: any JWTAlgorithm, generation: Int) -> AuthDecision {
        guard (try? algorithm.verify(token.signature, signs: token.signingInput)) == true else { return .deny(Self.badSignature) }
        let claims = token.payload.claims
        let decision = check(claims)
        if case .allow = decision {
            verified.withLock { v in
                if v.generation != generation || v.tokens.count >= Self.verifiedCapacity { v = (generation, [:]) }
                v.tokens[token.token] = claims
            }
        }
        return decision
    }

    /// The rules that apply to a correctly signed token, now.
    private func check(_ claims: TokenClaimRules.Claims) -> AuthDecision {
        if let violation = rules.violation(of: claims, now: now().timeIntervalSince1970) {
            return .deny(.unauthorized(violation.description, invalidToken: true))
        }
        return .allow(subject: claims.subject)
    }

    private func cachedAlgorithm(_ key: String, generation: Int) -> (any JWTAlgorithm)? {
        resolved.withLock { $0.generation == generation ? $0.algorithms[key] : nil }
    }

    /// The key collection for this version of the key file (built once per version).
    private func keys(_ material: KeyMaterial, _ generation: Int) async throws -> JWTKeyCollection {
        if let cached = built.withLock({ $0 }), cached.generation == generation { return cached.keys }
        let fresh = try await material.collection()
        built.withLock { $0 = (generation, fresh) }
        return fresh
    }
}
