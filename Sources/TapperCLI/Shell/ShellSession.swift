import ArgumentParser
import Foundation
import Synchronization
import TapperClient
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif

/// One `tapper shell` session: reads command lines, runs them through the same
/// swift-argument-parser commands as the CLI, and handles the few words only a shell needs
/// (`exit`, `quit`, `use`, `watch`, `help`).
final class ShellSession: @unchecked Sendable {
    let interactive: Bool
    let historyPath: String?
    private var history: ShellHistory
    private let running = Mutex<Task<Int32, Never>?>(nil)
    private lazy var catalog = LiveCatalogCache { [weak self] in self?.registryURL ?? RegistryClient.defaultURL }
    private lazy var editor: LineEditor = {
        let completer = ShellCompleter(tree: .tapper)
        let catalog = self.catalog
        return LineEditor { before, current in completer.complete(before: before, current: current) { catalog.get() } }
    }()

    init(interactive: Bool, historyPath: String?) {
        self.interactive = interactive
        self.historyPath = historyPath
        self.history = interactive ? historyPath.map { ShellHistory.load(path: $0) } ?? ShellHistory() : ShellHistory()
    }

    var registryURL: String { RegistryOptions.environmentURL }

    var gatewayURL: String { RegistryOptions.environmentGatewayURL }

    var prompt: String { "tapper \(RegistryClient(baseURL: registryURL).authority)> " }

    /// Runs until `exit`, `quit` or end of input. Interactive: returns 0. From a script: the
    /// status of the first command that failed, or 0.
    func run() async -> Int32 {
        let signals = Task { [weak self] in
            for await _ in await UnixSignalsSequence(trapping: .sigint) {
                guard let self else { return }
                if let task = self.running.withLock({ $0 }) { task.cancel() } else if self.interactive { self.editor.interrupt() }
            }
        }
        defer { signals.cancel() }

        var firstFailure: Int32 = 0
        if interactive {
            editor.setHistory(history.entries)
            print("tapper \(TapperCommand.version) shell — 'help' lists commands, TAB completes, Ctrl-D leaves.")
        }
        while let line = await nextLine() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if interactive { remember(trimmed) }
            let outcome = await execute(trimmed)
            switch outcome {
            case .exit: return interactive ? 0 : firstFailure
            case .status(let code):
                if code != 0 && firstFailure == 0 { firstFailure = code }
            }
        }
        if interactive { print("") }
        return interactive ? 0 : firstFailure
    }

    enum Outcome: Equatable { case status(Int32), exit }

    /// Runs one command line.
    func execute(_ line: String) async -> Outcome {
        let words: [String]
        do { words = try ShellWords.split(line) } catch {
            printError("\(error)")
            return .status(64)
        }
        guard let first = words.first else { return .status(0) }
        switch first {
        case "exit", "quit":
            return .exit
        case "use":
            return .status(use(Array(words.dropFirst())))
        case "watch":
            return .status(await watch(Array(words.dropFirst())))
        case "help" where words.count == 1:
            print(TapperCommand.helpMessage())
            print(Self.shellHelp)
            return .status(0)
        case "shell":
            printError("already in the shell")
            return .status(64)
        default:
            return .status(await runCancellable(words))
        }
    }

    static let shellHelp = """

        SHELL:
          Type any command above without the word 'tapper'; 'help COMMAND' shows its help.
          use registry URL | use gateway URL   switch what the commands talk to
          watch [-n SECONDS] COMMAND           re-run COMMAND every SECONDS (2) until Ctrl-C
          exit, quit, Ctrl-D                   leave
          TAB completes commands, options, service names, instance ids and route paths;
          Up/Down walk the history; Ctrl-C clears the line or interrupts a running command.
        """

    // MARK: Running commands

    /// Runs a CLI command in a task that Ctrl-C cancels.
    private func runCancellable(_ words: [String]) async -> Int32 {
        await runInterruptible { await Self.runCommand(words) }
    }

    /// Runs `body` as the current command: Ctrl-C cancels it and the prompt comes back.
    private func runInterruptible(_ body: @escaping @Sendable () async -> Int32) async -> Int32 {
        let task = Task { await body() }
        running.withLock { $0 = task }
        let code = await task.value
        running.withLock { $0 = nil }
        if task.isCancelled {
            print("")  // after the ^C the terminal echoed
            return 130
        }
        return code
    }

    /// Parses and runs one command exactly as the CLI would, returning its exit status.
    static func runCommand(_ words: [String]) async -> Int32 {
        do {
            var command = try TapperCommand.parseAsRoot(words)
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            if error is CancellationError { return 130 }
            let code = TapperCommand.exitCode(for: error).rawValue
            let message = TapperCommand.fullMessage(for: error)
            if !message.isEmpty {
                if code == 0 { print(message) } else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
            }
            return code
        }
    }

    private func use(_ args: [String]) -> Int32 {
        if args.isEmpty {
            print("registry \(registryURL)\ngateway  \(gatewayURL)")
            return 0
        }
        guard args.count == 2, ["registry", "gateway"].contains(args[0]) else {
            printError("usage: use registry URL | use gateway URL")
            return 64
        }
        let url = args[1]
        guard url.lowercased().hasPrefix("http://") || url.lowercased().hasPrefix("https://") else {
            printError("'\(url)' is not an http:// or https:// URL")
            return 64
        }
        setenv(args[0] == "registry" ? "TAPPER_REGISTRY_URL" : "TAPPER_GATEWAY_URL", url, 1)
        if args[0] == "registry" { catalog.invalidate() }
        print("\(args[0]) is now \(url)")
        return 0
    }

    private func watch(_ args: [String]) async -> Int32 {
        var args = args[...]
        var interval: Duration = .seconds(2)
        if args.first == "-n" {
            guard args.count >= 2, let seconds = Double(args[args.startIndex + 1]), seconds > 0 else {
                printError("usage: watch [-n SECONDS] COMMAND")
                return 64
            }
            interval = .milliseconds(Int(seconds * 1000))
            args = args.dropFirst(2)
        }
        guard !args.isEmpty else {
            printError("usage: watch [-n SECONDS] COMMAND")
            return 64
        }
        let words = Array(args)
        let pause = interval
        let clear = isatty(STDOUT_FILENO) == 1
        _ = await runInterruptible {
            while !Task.isCancelled {
                if clear { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                _ = await Self.runCommand(words)
                try? await Task.sleep(for: pause)
            }
            return 0
        }
        return 0  // a watch ends with Ctrl-C; that is not a failure
    }

    // MARK: Input

    private func nextLine() async -> String? {
        guard interactive else { return Swift.readLine(strippingNewline: true) }
        let editor = self.editor
        let prompt = self.prompt
        return await withCheckedContinuation { continuation in
            // readline blocks: it gets its own thread, so the tasks it waits for can run.
            let thread = Thread { continuation.resume(returning: editor.readLine(prompt: prompt)) }
            thread.start()
        }
    }

    private func remember(_ line: String) {
        guard history.add(line) else { return }
        editor.setHistory(history.entries)
        guard let historyPath else { return }
        do { try history.save(path: historyPath) } catch { printError("\(error)") }
    }

    private func printError(_ message: String) {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
    }
}
