import ArgumentParser
import Foundation
import Synchronization
import UnixSignals

/// How a server command was started when layers were involved: the user's own arguments, the
/// environment and the config file, kept so that a reload can layer the changed file again
/// exactly as at startup.
struct ConfigInvocation: Sendable {
    var layers: ConfigLayers
    /// The arguments after `gateway serve` / `registry serve`, as the user typed them.
    var userArguments: [String]
    var environment: [String: String]
    /// The `--config` file (nil: environment layer only).
    var filePath: String?
    /// The file as read at startup, and its bytes (a reload compares them).
    var file: ConfigFile?
    var fileData: Data?
    var origins: [String: ConfigLayers.Origin]

    /// Set once by ``TapperMain`` before the command runs.
    static let current = Mutex<ConfigInvocation?>(nil)

    /// The server commands whose settings are layered, by their words.
    static func section(of arguments: [String]) -> (section: String, layers: ConfigLayers)? {
        guard arguments.count >= 2, arguments[1] == "serve" else { return nil }
        switch arguments[0] {
        case "gateway": return ("gateway", ConfigLayers(section: "gateway", command: TapperCommand.Gateway.Serve.self))
        case "registry": return ("registry", ConfigLayers(section: "registry", command: TapperCommand.Registry.Serve.self))
        default: return nil
        }
    }

    /// Layers the environment and the file under `arguments` (the process arguments without
    /// the program name) for `gateway serve` and `registry serve`.
    /// - Returns: the arguments to run, and the invocation to remember (nil: nothing layered).
    static func resolve(_ arguments: [String], environment: [String: String]) throws(ConfigError) -> (arguments: [String], invocation: ConfigInvocation?) {
        guard let (section, layers) = section(of: arguments) else { return (arguments, nil) }
        let user = Array(arguments.dropFirst(2))
        if user.contains("--help") || user.contains("-h") { return (arguments, nil) }
        let path = layers.configPath(in: user, environment: environment)
        var data: Data? = nil
        var file: ConfigFile? = nil
        if let path {
            guard let bytes = FileManager.default.contents(atPath: path) else { throw ConfigError(file: path, key: nil, line: nil, message: "cannot be read") }
            guard let text = String(data: bytes, encoding: .utf8) else { throw ConfigError(file: path, key: nil, line: nil, message: "is not UTF-8 text") }
            file = try ConfigFile(yaml: text, name: path)
            data = bytes
        }
        let (merged, origins) = try layers.arguments(user: user, environment: environment, file: file, filePath: path)
        let layered = origins.values.contains { $0 != .commandLine }
        if !layered && path == nil { return (arguments, nil) }
        let invocation = ConfigInvocation(layers: layers, userArguments: user, environment: environment, filePath: path, file: file, fileData: data, origins: origins)
        return ([section, "serve"] + merged, invocation)
    }

    /// The file read again: the command's arguments re-layered over it, or the error that keeps
    /// the previous settings.
    func reloaded(_ file: ConfigFile) throws(ConfigError) -> (arguments: [String], origins: [String: ConfigLayers.Origin]) {
        try layers.arguments(user: userArguments, environment: environment, file: file, filePath: filePath)
    }

    /// The keys of the command's section whose values differ between two versions of the file.
    func changedKeys(from old: ConfigFile?, to new: ConfigFile) -> [String] {
        let a = old?.settings[layers.section] ?? [:]
        let b = new.settings[layers.section] ?? [:]
        return Set(a.keys).union(b.keys).filter { a[$0]?.value != b[$0]?.value }.sorted()
    }

    /// Who wins over the file for `key`: a flag or a variable (nil: the file decides).
    func overriddenBy(_ key: String) -> String? {
        let canonical = layers.key(named: key)?.name ?? key
        if layers.namesGiven(in: userArguments).contains(canonical) { return "--\(canonical) on the command line" }
        if let k = layers.key(named: canonical), environment[layers.environmentVariable(for: k)] != nil { return layers.environmentVariable(for: k) }
        return nil
    }
}

extension ConfigInvocation {
    /// `gateway serve` and `registry serve` with their environment and `--config` layered in
    /// (``ConfigInvocation``); a bad file or a bad layered value ends the process with an error
    /// naming the file, line and key (or the variable).
    static func layeredArguments(_ arguments: [String]) -> [String] {
        let resolved: (arguments: [String], invocation: ConfigInvocation?)
        do {
            resolved = try ConfigInvocation.resolve(arguments, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            exit(ExitCode.validationFailure.rawValue)
        }
        guard let invocation = resolved.invocation else { return arguments }
        ConfigInvocation.current.withLock { $0 = invocation }
        // Parse (and validate) once here, so that a bad value says where it was set.
        do {
            _ = try TapperCommand.parseAsRoot(resolved.arguments)
        } catch {
            let code = TapperCommand.exitCode(for: error)
            if code != .success {
                let message = ConfigLayers.attribute(TapperCommand.message(for: error), origins: invocation.origins)
                FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
                exit(code.rawValue)
            }
        }
        return resolved.arguments
    }
}

/// Watches a `--config` file (polling once a second, and at once on SIGHUP when `hangup` is
/// set) and hands every changed version that parses to `apply`; a file that does not parse is
/// reported and the settings in force are kept.
struct ConfigWatcher: Sendable {
    var path: String
    var interval: Duration = .seconds(1)
    /// Also check when the process gets SIGHUP (`kill -HUP`, as nginx and HAProxy reload).
    var hangup = false

    /// Runs until cancelled. `initial` is the text the settings in force came from.
    func run(initial: Data?, ready: () -> Void = {}, onError: @Sendable (ConfigError) -> Void, apply: @Sendable (ConfigFile) async -> Void) async {
        var last = initial
        var lastError: ConfigError? = nil
        let (triggers, trigger) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let interval = self.interval
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                trigger.yield()
            }
        }
        // SIGHUP is trapped (no longer ends the process) once the sequence exists.
        let hangups = hangup ? await UnixSignalsSequence(trapping: .sighup) : nil
        let signals = hangups.map { sequence in Task { for await _ in sequence { trigger.yield() } } }
        ready()
        defer {
            ticker.cancel()
            signals?.cancel()
            trigger.finish()
        }
        for await _ in triggers {
            if Task.isCancelled { return }
            let data = FileManager.default.contents(atPath: path)
            guard data != last else { continue }
            guard let data else {
                let e = ConfigError(file: path, key: nil, line: nil, message: "cannot be read; keeping the settings in force")
                if e != lastError { onError(e) }
                lastError = e
                continue
            }
            do throws(ConfigError) {
                let text = String(decoding: data, as: UTF8.self)
                let file = try ConfigFile(yaml: text, name: path)
                last = data
                lastError = nil
                await apply(file)
            } catch {
                // Report each broken version once; a later fix is picked up as a change.
                if error != lastError { onError(error) }
                lastError = error
            }
        }
    }
}
