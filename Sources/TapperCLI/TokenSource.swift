import Foundation
import Logging
import TapperGateway

/// Where a token comes from: a file (re-read when its modification time changes, so tokens
/// rotate without a restart; see ``ReloadingFile``) or `TAPPER_TOKEN`.
final class TokenSource: Sendable {
    private let fileConfigured: Bool
    private let file: ReloadingFile<String>?
    let environment: String?

    /// - Parameter logger: told when the file is reloaded or a rewrite cannot be used.
    init(file: String?, environment: String?, logger: Logger = Logger(label: "tapper.token", factory: { _ in SwiftLogNoOpLogHandler() })) {
        fileConfigured = file != nil
        // An unreadable file is refused by the commands' validation before this is built.
        self.file = file.flatMap { try? ReloadingFile(path: $0, logger: logger, parse: Self.parse) }
        self.environment = environment.flatMap { $0.isEmpty ? nil : $0 }
    }

    var isConfigured: Bool { fileConfigured || environment != nil }

    /// The token now. The file is checked at most once a second; while a rewrite is unreadable
    /// or empty, the previous token stays in force.
    func current() -> String? {
        fileConfigured ? file?.current().value : environment
    }

    static func read(file: String) -> String? {
        FileManager.default.contents(atPath: file).flatMap { try? parse($0) }
    }

    /// A token file's contents, trimmed; an empty file is no token.
    @Sendable static func parse(_ data: Data) throws -> String {
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ReloadingFileError(message: "the token file is empty") }
        return token
    }
}
