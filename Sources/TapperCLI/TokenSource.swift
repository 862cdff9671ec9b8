import Foundation
import Synchronization

/// Where the registry's write token comes from: a file (re-read when its modification time
/// changes, so tokens rotate without a restart) or `TAPPER_TOKEN`.
final class TokenSource: Sendable {
    private struct Cache {
        var token: String?
        var modified: Date?
        var checked: ContinuousClock.Instant?
    }

    let file: String?
    let environment: String?
    private let cache = Mutex(Cache())

    init(file: String?, environment: String?) {
        self.file = file
        self.environment = environment.flatMap { $0.isEmpty ? nil : $0 }
        if let file { cache.withLock { $0.token = Self.read(file: file) } }
    }

    var isConfigured: Bool { file != nil || environment != nil }

    /// The token now. The file is checked at most once a second.
    func current() -> String? {
        guard let file else { return environment }
        let now = ContinuousClock.now
        return cache.withLock { c in
            if let checked = c.checked, checked.duration(to: now) < .seconds(1) { return c.token }
            c.checked = now
            let modified = (try? FileManager.default.attributesOfItem(atPath: file))?[.modificationDate] as? Date
            if modified != c.modified {
                c.modified = modified
                // Keep the old token if the file is briefly unreadable during a rotation.
                if let fresh = Self.read(file: file) { c.token = fresh }
            }
            return c.token
        }
    }

    static func read(file: String) -> String? {
        guard let data = FileManager.default.contents(atPath: file), let s = String(data: data, encoding: .utf8) else { return nil }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return t.isEmpty ? nil : t
    }
}
