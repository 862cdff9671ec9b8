import Foundation
import Yams

/// A `--config tapper.yaml` file: one section per server command, each a map from option names
/// (the long flag without `--`, e.g. `rate-limit`) to a scalar, a list of scalars, or a boolean
/// for flags.
///
/// ```yaml
/// gateway:
///   port: 8080
///   rate-limit: 100/s
///   trusted-proxies: [10.0.0.0/8]
///   no-access-log: true
/// registry:
///   backend: etcd://127.0.0.1:2379
/// ```
struct ConfigFile: Equatable, Sendable {
    /// A value as written; scalars keep their YAML text (`8080`, `100/s`, `true`).
    enum Value: Equatable, Sendable {
        case scalar(String)
        case list([String])
    }

    /// One setting with where it was written, for error messages.
    struct Entry: Equatable, Sendable {
        var value: Value
        var line: Int
    }

    /// The sections a file may have.
    static let sections = ["gateway", "registry"]

    /// `section → key → entry` (keys with `_` are stored with `-`, so both spellings work).
    var settings: [String: [String: Entry]]

    /// Parses the text of a config file; `name` (its path) prefixes every error.
    init(yaml text: String, name: String) throws(ConfigError) {
        settings = [:]
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(file: name, key: nil, line: nil, message: "not valid YAML: \(Self.describe(error))")
        }
        guard let root else { return }  // an empty file sets nothing
        guard case .mapping(let top) = root else {
            throw ConfigError(file: name, key: nil, line: root.mark?.line, message: "expected a mapping with sections \(Self.sections.joined(separator: ", "))")
        }
        for (keyNode, valueNode) in top {
            guard let section = keyNode.scalar?.string, Self.sections.contains(section) else {
                throw ConfigError(
                    file: name, key: keyNode.scalar?.string, line: keyNode.mark?.line,
                    message: "unknown section (expected \(Self.sections.joined(separator: " or ")): put options under 'gateway:' or 'registry:'")
            }
            if case .scalar(let s) = valueNode, s.string.isEmpty || s.string == "~" || s.string == "null" { continue }
            guard case .mapping(let entries) = valueNode else {
                throw ConfigError(file: name, key: section, line: valueNode.mark?.line, message: "expected a mapping of option names to values")
            }
            var out: [String: Entry] = [:]
            for (k, v) in entries {
                guard let raw = k.scalar?.string, !raw.isEmpty else {
                    throw ConfigError(file: name, key: section, line: k.mark?.line, message: "option names must be plain words like rate-limit")
                }
                let key = raw.replacingOccurrences(of: "_", with: "-")
                let path = "\(section).\(raw)"
                guard out[key] == nil else { throw ConfigError(file: name, key: path, line: k.mark?.line, message: "set twice") }
                let line = v.mark?.line ?? k.mark?.line ?? 0
                switch v {
                case .scalar(let s):
                    out[key] = Entry(value: .scalar(s.string), line: line)
                case .sequence(let items):
                    var list: [String] = []
                    for item in items {
                        guard let s = item.scalar?.string else {
                            throw ConfigError(file: name, key: path, line: item.mark?.line, message: "a list may hold plain values only")
                        }
                        list.append(s)
                    }
                    out[key] = Entry(value: .list(list), line: line)
                case .mapping, .alias:
                    throw ConfigError(file: name, key: path, line: line, message: "expected a value or a list of values, not a mapping")
                }
            }
            settings[section] = out
        }
    }

    /// Reads and parses the file at `path`.
    init(contentsOf path: String) throws(ConfigError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, key: nil, line: nil, message: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, key: nil, line: nil, message: "is not UTF-8 text")
        }
        try self.init(yaml: text, name: path)
    }

    private static func describe(_ error: any Error) -> String {
        if let yaml = error as? YamlError {
            switch yaml {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
                return "\(problem) at line \(mark.line), column \(mark.column)"
            default:
                return "\(yaml)"
            }
        }
        return "\(error)"
    }
}

/// A problem with the configuration, naming the file, the key (`gateway.rate-limit`) and the line.
struct ConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    var file: String
    var key: String?
    var line: Int?
    var message: String

    var description: String {
        var where_ = file
        if let line { where_ += ":\(line)" }
        if let key { where_ += ": \(key)" }
        return "\(where_): \(message)"
    }
}
