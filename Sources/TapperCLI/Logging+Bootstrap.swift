import Logging
import Synchronization

/// Bootstraps swift-log once per process, to stderr, at the requested level.
enum LogSetup {
    private static let done = Mutex(false)

    static func logger(label: String, options: LoggingOptions) -> Logger {
        let first = done.withLock { d -> Bool in
            defer { d = true }
            return !d
        }
        if first {
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = .trace
                return h
            }
        }
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: options.logLevel) ?? .info
        return logger
    }
}
