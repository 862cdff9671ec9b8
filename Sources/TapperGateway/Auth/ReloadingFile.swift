import Foundation
import Logging
import Synchronization

/// A value parsed from a file and parsed again when the file changes, so keys and secrets
/// rotate without a restart. The file's modification time is checked at most once a second (by default);
/// when the new contents do not parse, the last good value stays in force (a rotation that
/// writes the file in two steps never locks everyone out) and the failure is logged once.
public final class ReloadingFile<Value: Sendable>: Sendable {
    private struct Cache {
        var value: Value
        var modified: Date?
        var checked: ContinuousClock.Instant
        /// Bumped whenever `value` changes, so dependants can rebuild what they derive from it.
        var generation = 0
    }

    public let path: String
    private let checkInterval: Duration
    private let parse: @Sendable (Data) throws -> Value
    private let logger: Logger
    private let cache: Mutex<Cache>

    /// Reads and parses the file now.
    /// - Parameter checkInterval: how often the modification time is looked at.
    /// - Throws: when the file cannot be read or does not parse (the message names the file).
    public init(path: String, checkInterval: Duration = .seconds(1), logger: Logger, parse: @escaping @Sendable (Data) throws -> Value) throws {
        self.path = path
        self.checkInterval = checkInterval
        self.parse = parse
        self.logger = logger
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ReloadingFileError(message: "'\(path)' cannot be read")
        }
        let value: Value
        do {
            value = try parse(data)
        } catch {
            throw ReloadingFileError(message: "'\(path)': \(error)")
        }
        cache = Mutex(Cache(value: value, modified: Self.modified(path), checked: .now))
    }

    /// The current value, and its generation (which grows on every successful reload).
    public func current() -> (value: Value, generation: Int) {
        let now = ContinuousClock.now
        return cache.withLock { c in
            guard c.checked.duration(to: now) >= checkInterval else { return (c.value, c.generation) }
            c.checked = now
            let modified = Self.modified(path)
            guard modified != c.modified else { return (c.value, c.generation) }
            c.modified = modified
            guard let data = FileManager.default.contents(atPath: path) else {
                logger.warning("cannot read \(path); keeping the previous contents")
                return (c.value, c.generation)
            }
            do {
                c.value = try parse(data)
                c.generation += 1
                logger.notice("reloaded \(path)")
            } catch {
                logger.error("\(path) changed but does not parse (\(error)); keeping the previous contents")
            }
            return (c.value, c.generation)
        }
    }

    private static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}

/// A key or secret file that cannot be used.
public struct ReloadingFileError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) { self.message = message }
}
