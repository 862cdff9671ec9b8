/// What the registry knows right now, for completing names and paths.
struct LiveCatalog: Sendable, Equatable {
    /// Service name → instance ids.
    var services: [String: [String]] = [:]
    /// Registered route paths (templates), sorted.
    var routePaths: [String] = []
}

/// Tab completion for the shell: pure, so it is tested without a terminal. Commands, subcommands
/// and options come from the parser's own ``CommandTree``; service names, instance ids and route
/// paths come from a ``LiveCatalog``, fetched lazily (only when a position needs them).
struct ShellCompleter: Sendable {
    /// Words the shell understands besides the CLI's commands.
    static let builtins = ["exit", "quit", "use", "watch"]
    static let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    var tree: CommandTree

    /// Candidates for the word being typed.
    /// - Parameters:
    ///   - before: the complete words before it.
    ///   - current: what is typed of it so far.
    ///   - live: fetches the live catalog; called only when the position completes names or paths.
    func complete(before: [String], current: String, live: () -> LiveCatalog) -> [String] {
        var words = before[...]
        // Shell builtins first.
        if let first = words.first {
            switch first {
            case "use":
                return words.count == 1 ? filter(["registry", "gateway"], current) : []
            case "watch":
                words = words.dropFirst()
                if words.first == "-n" { words = words.dropFirst(2) }
            case "exit", "quit":
                return []
            default:
                break
            }
        }

        var node = tree
        var isRoot = true
        var positional = 0
        var values: [String] = []  // positional values seen, in order
        var pendingOption: CommandTree.Argument? = nil
        for word in words {
            if pendingOption != nil {
                pendingOption = nil  // this word is the option's value
                continue
            }
            if word.hasPrefix("-") {
                if let option = node.option(spelled: word), option.takesValue, !word.contains("=") { pendingOption = option }
                continue
            }
            if positional == 0, let child = node.child(word) {
                node = child
                isRoot = false
                continue
            }
            values.append(word)
            positional += 1
        }

        if let option = pendingOption {
            return valueCandidates(for: option.valueName ?? "", service: nil, current: current, live: live)
        }
        if current.hasPrefix("-") {
            let spellings = node.options.filter { $0.shouldDisplay ?? true }.flatMap(\.spellings)
            return filter(spellings, current)
        }
        if positional == 0 && !node.children.isEmpty {
            var names = node.children.map(\.commandName)
            if isRoot && words.isEmpty { names += Self.builtins }
            return filter(names, current)
        }
        if node.commandName == "help" {
            return filter(tree.children.map(\.commandName).filter { $0 != "help" }, current)
        }
        let positionals = node.positionals
        guard positional < positionals.count else { return [] }
        return valueCandidates(for: positionals[positional].valueName ?? "", service: values.first, current: current, live: live)
    }

    private func valueCandidates(for valueName: String, service: String?, current: String, live: () -> LiveCatalog) -> [String] {
        switch valueName {
        case "name", "service":
            return filter(live().services.keys.sorted(), current)
        case "instance-id", "id":
            guard let service else { return [] }
            return filter((live().services[service] ?? []).sorted(), current)
        case "method":
            return filter(Self.methods, current.uppercased())
        case "path":
            return filter(live().routePaths, current)
        default:
            return []
        }
    }

    private func filter(_ candidates: [String], _ prefix: String) -> [String] {
        candidates.filter { $0.hasPrefix(prefix) }
    }
}
