import Foundation
import Logging

/// Re-reads the HTTPS listener's certificate and key files when they change, so a renewed
/// certificate (certbot, cert-manager) is served without a restart. The files' modification
/// times, sizes and inodes are looked at every `interval`; a change loads every pair again and,
/// only when all of them load (a renewal writes the key and the chain in two steps; a half
/// written pair is retried on the next look), hands the new set over. Connections already
/// open keep the certificate they were accepted with.
struct TLSCertificateWatcher {
    let files: [TLSCertificateFiles]
    /// ALPN offers h2 (``GatewayConfiguration/http2``).
    let allowH2: Bool
    let logger: Logger
    var interval: Duration = .milliseconds(500)

    /// What identifies one version of a file.
    struct Stamp: Equatable {
        var modified: Date?
        var size: Int?
        var inode: Int?
    }

    func stamps() -> [Stamp] {
        files.flatMap { [$0.certificate, $0.key] }.map { path in
            let a = try? FileManager.default.attributesOfItem(atPath: path)
            return Stamp(
                modified: a?[.modificationDate] as? Date, size: (a?[.size] as? NSNumber)?.intValue, inode: (a?[.systemFileNumber] as? NSNumber)?.intValue)
        }
    }

    /// Watches until cancelled; `install` gets each new set.
    func watch(install: @Sendable (TLSContexts) async -> Void, failed: @Sendable () -> Void = {}) async {
        var seen = stamps()
        var lastError: String? = nil
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = stamps()
            guard now != seen else { continue }
            do {
                let contexts = try TLSContexts(files, allowH2: allowH2)
                seen = now
                lastError = nil
                await install(contexts)
                logger.notice("TLS certificates reloaded", metadata: ["certificates": "\(contexts.summary)"])
            } catch {
                failed()
                // Keep serving the old certificates; say so once per distinct failure.
                if lastError != error.message {
                    lastError = error.message
                    logger.error("TLS certificates not reloaded, the previous ones stay in use", metadata: ["error": "\(error.message)"])
                }
            }
        }
    }
}
