import ArgumentParser
import Foundation

/// Layers a server command's settings: flags > environment (`TAPPER_GATEWAY_*`,
/// `TAPPER_REGISTRY_*`) > config file (`--config`) > the built-in defaults.
///
/// The layers become command-line arguments: every option the user did not give on the
/// command line is taken from the environment, else from the file, and the command parses and
/// validates the result as if typed — one set of rules (types, ranges, combinations) for every
/// layer. Keys are the options' long names, read from the command's own definition, so a new
/// flag is configurable at once and nothing can drift.
struct ConfigLayers: Sendable {
    /// One configurable option.
    struct Key: Equatable, Sendable {
        /// Long name without `--` (`rate-limit`); the key in the file.
        var name: String
        /// Other long names of the same option (`jwks-file` for `jwt-key-file`).
        var aliases: [String]
        var isFlag: Bool
        var isRepeating: Bool
        /// Takes several values after one flag (`--trusted-proxies a b`).
        var upToNextOption: Bool
    }

    /// Where a setting came from, for error messages.
    enum Origin: Equatable, Sendable {
        case commandLine
        case environment(variable: String)
        case file(path: String, key: String, line: Int)
    }

    /// The file section and the environment prefix (`gateway` → `TAPPER_GATEWAY_`).
    var section: String
    var keys: [Key]

    var environmentPrefix: String { "TAPPER_\(section.uppercased())_" }

    /// Options that never come from a file or the environment.
    static let excluded: Set<String> = ["config", "help", "version", "experimental-dump-help", "generate-completion-script"]

    init(section: String, keys: [Key]) {
        self.section = section
        self.keys = keys
    }

    /// The keys of `command`, from ArgumentParser's own description of it.
    init<C: ParsableCommand>(section: String, command: C.Type) {
        var keys: [Key] = []
        if let data = C._dumpHelp().data(using: .utf8), let info = try? JSONDecoder().decode(DumpedHelp.self, from: data) {
            for argument in info.command.arguments ?? [] where argument.kind != "positional" {
                let longs = (argument.names ?? []).filter { $0.kind == "long" }.map(\.name)
                guard let first = longs.first, !Self.excluded.contains(first) else { continue }
                keys.append(
                    Key(
                        name: first, aliases: Array(longs.dropFirst()), isFlag: argument.kind == "flag", isRepeating: argument.isRepeating,
                        upToNextOption: argument.parsingStrategy == "upToNextOption"))
            }
        }
        self.init(section: section, keys: keys)
    }

    /// The part of ArgumentParser's `--experimental-dump-help` JSON (its ToolInfoV0, whose
    /// module the package does not export as a product) that names the options.
    private struct DumpedHelp: Decodable {
        struct Command: Decodable { var arguments: [Argument]? }
        struct Argument: Decodable {
            struct Name: Decodable {
                var kind: String
                var name: String
            }
            var kind: String
            var names: [Name]?
            var isRepeating: Bool
            var parsingStrategy: String
        }
        var command: Command
    }

    func key(named name: String) -> Key? {
        keys.first { $0.name == name || $0.aliases.contains(name) }
    }

    /// `rate-limit` → `TAPPER_GATEWAY_RATE_LIMIT`.
    func environmentVariable(for key: Key) -> String {
        environmentPrefix + key.name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The names (`rate-limit`) the user's own arguments set.
    func namesGiven(in arguments: [String]) -> Set<String> {
        var given: Set<String> = []
        for argument in arguments {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            let name = String(argument.dropFirst(2).prefix { $0 != "=" })
            if let key = key(named: name) { given.insert(key.name) }
        }
        return given
    }

    /// The `--config` value in the user's arguments, else `TAPPER_<SECTION>_CONFIG`.
    func configPath(in arguments: [String], environment: [String: String]) -> String? {
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { break }
            if a == "--config", i + 1 < arguments.count { return arguments[i + 1] }
            if a.hasPrefix("--config=") { return String(a.dropFirst("--config=".count)) }
            i += 1
        }
        return environment[environmentPrefix + "CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The arguments the command parses: the user's, after those the environment and then the
    /// file supply for every option the user left out; and where each supplied option came from.
    func arguments(user: [String], environment: [String: String], file: ConfigFile?, filePath: String?) throws(ConfigError) -> (
        arguments: [String], origins: [String: Origin]
    ) {
        let given = namesGiven(in: user)
        var supplied: [String] = []
        var origins: [String: Origin] = [:]
        for name in given { origins[name] = .commandLine }
        let fileSettings = file?.settings[section] ?? [:]
        let path = filePath ?? "config"
        for (name, entry) in fileSettings where key(named: name) == nil {
            throw ConfigError(file: path, key: "\(section).\(name)", line: entry.line, message: "unknown option\(suggestion(for: name)); see 'tapper \(section) serve --help'")
        }
        for key in keys where !given.contains(key.name) {
            let variable = environmentVariable(for: key)
            if let text = environment[variable] {
                supplied += try values(for: key, .scalar(text), origin: "\(variable)", list: { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } })
                origins[key.name] = .environment(variable: variable)
            } else if let entry = fileSettings[key.name] ?? key.aliases.lazy.compactMap({ fileSettings[$0] }).first {
                do {
                    supplied += try values(for: key, entry.value, origin: "\(section).\(key.name)", list: { [$0] })
                } catch {
                    throw ConfigError(file: path, key: "\(section).\(key.name)", line: entry.line, message: error.message)
                }
                origins[key.name] = .file(path: path, key: "\(section).\(key.name)", line: entry.line)
            }
        }
        // Supplied options go first: the user's own arguments keep their order and positions.
        return (supplied + user, origins)
    }

    /// The arguments for one option's value.
    private func values(for key: Key, _ value: ConfigFile.Value, origin: String, list split: (String) -> [String]) throws(ConfigError) -> [String] {
        let flag = "--" + key.name
        if key.isFlag {
            guard case .scalar(let text) = value else { throw ConfigError(file: origin, key: nil, line: nil, message: "expected true or false") }
            switch text.lowercased() {
            case "true", "yes", "on", "1": return [flag]
            case "false", "no", "off", "0", "": return []
            default: throw ConfigError(file: origin, key: nil, line: nil, message: "expected true or false, got '\(text)'")
            }
        }
        let items: [String]
        switch value {
        case .scalar(let text): items = key.isRepeating ? split(text) : [text]
        case .list(let list):
            guard key.isRepeating else { throw ConfigError(file: origin, key: nil, line: nil, message: "takes one value, not a list") }
            items = list
        }
        if key.upToNextOption { return items.isEmpty ? [] : [flag] + items }
        // `--name=value` keeps a value that starts with '-' from being read as an option; an
        // empty value (`version-header: ''`, which turns pinning off) has to be its own word.
        return items.flatMap { $0.isEmpty ? [flag, ""] : ["\(flag)=\($0)"] }
    }

    private func suggestion(for name: String) -> String {
        let near = keys.map(\.name).min { Self.distance($0, name) < Self.distance($1, name) }
        if let near, Self.distance(near, name) <= max(2, name.count / 4) { return " (did you mean '\(near)'?)" }
        return ""
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }

    /// Puts the origin of the offending setting in front of a validation message that names its
    /// flag (`--rate-limit: …` from the file becomes `tapper.yaml:3: gateway.rate-limit: …`).
    static func attribute(_ message: String, origins: [String: Origin]) -> String {
        for (name, origin) in origins.sorted(by: { $0.key.count > $1.key.count }) where message.contains("--\(name)") {
            switch origin {
            case .commandLine: return message
            case .environment(let variable): return "\(variable): \(message)"
            case .file(let path, let key, let line): return "\(path):\(line): \(key): \(message)"
            }
        }
        return message
    }
}
