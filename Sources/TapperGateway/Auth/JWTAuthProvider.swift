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
public final class JWTAuthProvider: GatewayAuthProvider {
    /// The algorithms the gateway accepts.
    public enum Algorithm: String, Sendable, CaseIterable {
        case hs256 = "HS256"
        case rs256 = "RS256"
        case es256 = "ES256"
    }

    /// Parsed key material of one version of the key file.
    enum KeyMaterial: Sendable {
        case hmac(HMACKey)
        case rsa(Insecure.RSA.PublicKey)
        case ecdsa(ES256PublicKey)
        case jwks(JWKS)

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
        static func parse(_ data: Data, algorithm: Algorithm?) throws -> KeyMaterial {
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

    /// - Parameters:
    ///   - keyFile: JWKS, PEM public key/certificate, or HS256 secret.
    ///   - algorithm: what the key file is for; nil infers it from the file.
    ///   - rules: issuer, audiences and clock-skew leeway.
    ///   - now: the clock `exp` and `nbf` are checked against.
    /// - Throws: when the key file cannot be read or used.
    public init(
        keyFile: String, algorithm: Algorithm? = nil, rules: TokenClaimRules = TokenClaimRules(), logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.keyFile = try ReloadingFile(path: keyFile, logger: logger) { data in try KeyMaterial.parse(data, algorithm: algorithm) }
        self.rules = rules
        self.now = now
    }

    public func authenticate(_ request: AuthRequest) async -> AuthDecision {
        guard let token = request.bearerToken else {
            return .deny(.unauthorized("this route needs a bearer token (Authorization: Bearer <JWT>)"))
        }
        let (material, generation) = keyFile.current()
        guard let alg = Self.headerAlgorithm(of: token) else {
            return .deny(.unauthorized("the bearer token is not a JWT", invalidToken: true))
        }
        guard material.algorithms.contains(alg) else {
            return .deny(.unauthorized("tokens signed with \(Names.printable(alg)) are not accepted", invalidToken: true))
        }
        let payload: Payload
        do {
            payload = try await keys(material, generation).verify(token, as: Payload.self)
        } catch {
            return .deny(.unauthorized("the token's signature is not valid", invalidToken: true))
        }
        let claims = payload.claims
        if let violation = rules.violation(of: claims, now: now().timeIntervalSince1970) {
            return .deny(.unauthorized(violation.description, invalidToken: true))
        }
        return .allow(subject: claims.subject)
    }

    /// The key collection for this version of the key file (built once per version).
    private func keys(_ material: KeyMaterial, _ generation: Int) async throws -> JWTKeyCollection {
        if let cached = built.withLock({ $0 }), cached.generation == generation { return cached.keys }
        let fresh = try await material.collection()
        built.withLock { $0 = (generation, fresh) }
        return fresh
    }

    /// The `alg` of a compact JWT's header, without trusting anything else in it.
    static func headerAlgorithm(of token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let header = Base64URL.decode(parts[0]),
            let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any], let alg = object["alg"] as? String
        else { return nil }
        return alg
    }
}

/// base64url without padding (RFC 7515 §2).
enum Base64URL {
    static func decode(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
