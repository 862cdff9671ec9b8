import Foundation
import Logging
import TapperCore

/// `--auth api-key`: a request needs one of the keys in a file, as `X-API-Key: KEY` or
/// `Authorization: Bearer KEY`.
///
/// The file has one key a line, either `KEY` or `NAME:KEY` (NAME of letters, digits, `.`, `_`,
/// `-`); blank lines and lines starting with `#` are ignored. The key's name (or `key-N` for
/// the key on line N) is passed upstream as `X-Tapper-Subject`, never the key. The file is
/// re-read when it changes. Keys are compared in constant time.
public struct APIKeyAuthProvider: GatewayAuthProvider {
    /// The keys of one version of the file.
    public struct Keys: Sendable {
        public var entries: [(name: String, key: String)]

        /// Parses the file format above.
        /// - Throws: ``ReloadingFileError`` naming the line of a malformed entry, or when no key is given.
        public init(parsing text: String) throws {
            var entries: [(name: String, key: String)] = []
            for (i, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
                let line = rawLine.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                var name = "key-\(i + 1)"
                var key = Substring(line)
                if let colon = line.firstIndex(of: ":") {
                    let candidate = line[..<colon]
                    if !candidate.isEmpty, candidate.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
                        name = String(candidate)
                        key = line[line.index(after: colon)...]
                    }
                }
                let trimmed = key.trimmingCharacters(in: .whitespaces)
                guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw ReloadingFileError(message: "line \(i + 1): a key must be printable ASCII without spaces")
                }
                entries.append((name, trimmed))
            }
            guard !entries.isEmpty else { throw ReloadingFileError(message: "no API key in the file") }
            self.entries = entries
        }

        /// The name of the key `presented`, comparing with every key in constant time.
        func name(of presented: String) -> String? {
            var found: String? = nil
            for entry in entries where BearerToken.constantTimeEqual(entry.key, presented) && found == nil {
                found = entry.name
            }
            return found
        }
    }

    let keys: ReloadingFile<Keys>

    /// - Parameter checkInterval: how often the file's modification time is looked at.
    /// - Throws: when the file cannot be read or holds no valid key.
    public init(keysFile: String, checkInterval: Duration = .seconds(1), logger: Logger) throws {
        keys = try ReloadingFile(path: keysFile, checkInterval: checkInterval, logger: logger) { data in
            try Keys(parsing: String(decoding: data, as: UTF8.self))
        }
    }

    public func decideImmediately(_ request: AuthRequest) -> AuthDecision? {
        let presented = request.header("x-api-key") ?? request.bearerToken
        guard let presented, !presented.isEmpty else {
            return .deny(.unauthorized("this route needs an API key (X-API-Key or Authorization: Bearer)", scheme: "ApiKey"))
        }
        guard let name = keys.current().value.name(of: presented) else {
            return .deny(.unauthorized("the API key is not valid", scheme: "ApiKey", invalidToken: true))
        }
        return .allow(subject: name)
    }

    public func authenticate(_ request: AuthRequest) async -> AuthDecision {
        decideImmediately(request)!
    }
}
