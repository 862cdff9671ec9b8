import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The shell's command history: bounded, duplicates collapsed (re-running a command moves it to
/// the end instead of adding it twice), kept in a plain file with one command per line.
struct ShellHistory: Sendable, Equatable {
    static let defaultLimit = 1000

    private(set) var entries: [String] = []
    let limit: Int

    init(entries: [String] = [], limit: Int = Self.defaultLimit) {
        self.limit = limit
        for e in entries { add(e) }
    }

    /// Adds a command; blank lines are not kept. Returns false when nothing changed.
    @discardableResult
    mutating func add(_ line: String) -> Bool {
        let line = line.trimmingCharacters(in: .whitespaces)
        guard !line.isEmpty, !line.contains("\n") else { return false }
        if entries.last == line { return false }
        entries.removeAll { $0 == line }
        entries.append(line)
        if entries.count > limit { entries.removeFirst(entries.count - limit) }
        return true
    }

    /// `$XDG_STATE_HOME/tapper/history`, else `~/.local/state/tapper/history`.
    static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/tapper/history" }
        guard let home = environment["HOME"], !home.isEmpty else { return nil }
        return home + "/.local/state/tapper/history"
    }

    static func load(path: String, limit: Int = Self.defaultLimit) -> ShellHistory {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return ShellHistory(limit: limit) }
        return ShellHistory(entries: text.split(separator: "\n").map(String.init), limit: limit)
    }

    /// Writes the history (temporary file + rename, so a crash never leaves half a file).
    func save(path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let text = entries.isEmpty ? "" : entries.joined(separator: "\n") + "\n"
        let tmp = path + ".tmp"
        // 0600: a history can hold tokens typed on the command line.
        guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
              rename(tmp, path) == 0
        else { throw CLIError("cannot write the shell history to \(path)") }
    }
}
