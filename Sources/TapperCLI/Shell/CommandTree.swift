import ArgumentParser
import Foundation

/// The command tree as swift-argument-parser itself describes it (`--experimental-dump-help`),
/// read in-process: the shell completes from the same definitions the CLI parses with, so a new
/// option shows up in the shell without anyone touching the shell.
struct CommandTree: Decodable, Sendable {
    struct Name: Decodable, Sendable {
        var kind: String
        var name: String

        var spelled: String {
            switch kind {
            case "short": return "-" + name
            case "longWithSingleDash": return "-" + name
            default: return "--" + name
            }
        }
    }

    struct Argument: Decodable, Sendable {
        var kind: String  // positional, option, flag
        var names: [Name]?
        var valueName: String?
        var shouldDisplay: Bool?

        var takesValue: Bool { kind == "option" }
        var spellings: [String] { (names ?? []).map(\.spelled) }
    }

    var commandName: String
    var subcommands: [CommandTree]?
    var arguments: [Argument]?

    var children: [CommandTree] { subcommands ?? [] }
    var options: [Argument] { (arguments ?? []).filter { $0.kind != "positional" } }
    var positionals: [Argument] { (arguments ?? []).filter { $0.kind == "positional" } }

    func child(_ name: String) -> CommandTree? { children.first { $0.commandName == name } }

    func option(spelled word: String) -> Argument? {
        let name = word.split(separator: "=", maxSplits: 1).first.map(String.init) ?? word
        return options.first { $0.spellings.contains(name) }
    }

    private struct ToolInfo: Decodable { var command: CommandTree }

    /// The tree of `tapper`, from the parser's own description.
    static let tapper: CommandTree = {
        let json: String
        do {
            _ = try TapperCommand.parseAsRoot(["--experimental-dump-help"])
            json = ""
        } catch {
            json = TapperCommand.fullMessage(for: error)
        }
        guard let info = try? JSONDecoder().decode(ToolInfo.self, from: Data(json.utf8)) else {
            return CommandTree(commandName: "tapper", subcommands: [], arguments: [])
        }
        return info.command
    }()
}
