import Atomics
import CTapperTLS
import Foundation
import Synchronization
import TapperCore

/// The TLS contexts of the HTTPS listener, loaded from `--tls-cert`/`--tls-key` pairs: the
/// first pair is the default certificate, the others answer the SNI names they are valid for.
/// Immutable once loaded; a certificate change loads a new set (``TLSCertificateWatcher``) and
/// connections keep the set they started with (each ``TLSSession`` holds it).
final class TLSContexts: @unchecked Sendable {
    /// What status and logs say about one loaded certificate.
    struct Certificate: Sendable, Equatable {
        var files: TLSCertificateFiles
        /// The DNS names it is valid for (subjectAltName, else the subject's CN).
        var names: [String]
        /// Its notAfter.
        var notAfter: Date
    }

    let set: OpaquePointer
    let certificates: [Certificate]

    /// Loads every pair; throws ``TLSError`` naming the file that failed.
    init(_ pairs: [TLSCertificateFiles], allowH2: Bool = false) throws(TLSError) {
        guard !pairs.isEmpty else { throw TLSError(message: "--tls-port needs at least one --tls-cert/--tls-key pair") }
        var contexts: [OpaquePointer?] = []
        var certificates: [Certificate] = []
        for pair in pairs {
            var message = [CChar](repeating: 0, count: 512)
            guard let ctx = tapper_tls_ctx_new(pair.certificate, pair.key, &message, message.count) else {
                for c in contexts { tapper_tls_ctx_free(c) }
                throw TLSError(message: String(cString: message))
            }
            contexts.append(ctx)
            var names = [CChar](repeating: 0, count: 4096)
            var notAfter: Int64 = 0
            _ = tapper_tls_ctx_names(ctx, &names, names.count, &notAfter)
            certificates.append(
                Certificate(
                    files: pair, names: String(cString: names).split(separator: ",").map(String.init), notAfter: Date(timeIntervalSince1970: TimeInterval(notAfter))))
        }
        guard let set = contexts.withUnsafeMutableBufferPointer({ tapper_tls_set_new($0.baseAddress, Int32($0.count), allowH2 ? 1 : 0) }) else {
            for c in contexts { tapper_tls_ctx_free(c) }
            throw TLSError(message: "cannot create the TLS contexts")
        }
        self.set = set
        self.certificates = certificates
    }

    deinit { tapper_tls_set_free(set) }

    /// The certificates' names for logs: `a.test,localhost; *.b.test`.
    var summary: String { certificates.map { $0.names.joined(separator: ",") }.joined(separator: "; ") }
}

extension TLSCertificateFiles {
    /// Loads `pairs` as the HTTPS listener would; throws naming the file that does not load.
    public static func check(_ pairs: [TLSCertificateFiles]) throws {
        _ = try TLSContexts(pairs)
    }
}

struct TLSError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// One client connection's TLS state (an OpenSSL `SSL` on the socket), owned by its
/// ``Connection``. Keeps its ``TLSContexts`` alive: SNI switches contexts during the handshake.
final class TLSSession {
    let conn: OpaquePointer
    private let contexts: TLSContexts

    init?(contexts: TLSContexts, fd: Int32) {
        guard let conn = tapper_tls_conn_new(contexts.set, fd) else { return nil }
        self.conn = conn
        self.contexts = contexts
    }

    deinit { tapper_tls_conn_free(conn) }

    /// ALPN chose HTTP/2 (read after the handshake, i.e. with the first bytes).
    var negotiatedH2: Bool { tapper_tls_alpn_is_h2(conn) != 0 }
}

@available(*, unavailable)
extension TLSSession: Sendable {}

extension Gateway {
    /// `/_tapper/status`'s `tls`: the loaded certificates (names, expiry) and reload failures
    /// (nil without `--tls-port`).
    public var tlsStatus: StatusReport.TLS? {
        guard let contexts = tlsContexts.withLock({ $0 }) else { return nil }
        let now = Date()
        let format = ISO8601DateFormatter()
        return StatusReport.TLS(
            port: tlsBoundPort.load(ordering: .relaxed),
            certificates: contexts.certificates.map {
                .init(
                    file: $0.files.certificate, names: $0.names, notAfter: format.string(from: $0.notAfter),
                    expiresInDays: ($0.notAfter.timeIntervalSince(now) / 86400 * 1000).rounded() / 1000)
            },
            reloadFailures: tlsReloadFailures)
    }
}
