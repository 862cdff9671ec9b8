import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs a ``ConfigWatcher`` on the `--config` file of a running server under its service group:
/// each changed version is layered again under the same flags and environment and parsed as the
/// command would be; `apply` gets the command that results (and the keys that changed), while a
/// version that does not parse or validate is logged, naming the key, and changes nothing.
struct ConfigReloadService<Command: ParsableCommand>: Service {
    var invocation: ConfigInvocation
    var logger: Logger
    /// Applies what can change live and returns the keys it applied.
    var apply: @Sendable (Command, [String]) async -> Set<String>

    func run() async throws {
        guard let path = invocation.filePath else { return }
        let watcher = ConfigWatcher(path: path, hangup: true)
        let state = Mutex(invocation.file)
        try? await cancelWhenGracefulShutdown {
            await watcher.run(
                initial: invocation.fileData,
                ready: { logger.info("config: watching \(path) (checked every second, and on SIGHUP)") },
                onError: { error in logger.error("config not reloaded: \(error)") },
                apply: { file in
                    let old = state.withLock { $0 }
                    let changed = invocation.changedKeys(from: old, to: file)
                    guard !changed.isEmpty else {
                        state.withLock { $0 = file }
                        return
                    }
                    let command: Command
                    do {
                        let (arguments, origins) = try invocation.reloaded(file)
                        do {
                            guard let parsed = try TapperCommand.parseAsRoot([invocation.layers.section, "serve"] + arguments) as? Command else { return }
                            command = parsed
                        } catch {
                            let message = ConfigLayers.attribute(TapperCommand.message(for: error), origins: origins)
                            logger.error("config not reloaded, keeping the settings in force: \(message)")
                            return
                        }
                    } catch {
                        logger.error("config not reloaded, keeping the settings in force: \(error)")
                        return
                    }
                    state.withLock { $0 = file }
                    let applied = await apply(command, changed)
                    for key in changed where !applied.contains(key) {
                        if let winner = invocation.overriddenBy(key) {
                            logger.notice("config: \(invocation.layers.section).\(key) changed in \(path) but \(winner) sets it; unchanged")
                        } else {
                            logger.warning("config: \(invocation.layers.section).\(key) changed in \(path); it takes effect when the \(invocation.layers.section) restarts")
                        }
                    }
                    if !applied.isEmpty {
                        logger.notice("config reloaded from \(path): \(applied.sorted().map { "\(invocation.layers.section).\($0)" }.joined(separator: ", "))")
                    }
                })
        }
    }
}
