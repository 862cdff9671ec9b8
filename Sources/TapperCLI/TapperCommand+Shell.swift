import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension TapperCommand {
    /// `tapper shell`
    public struct Shell: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "shell",
            abstract: "Interactive shell: every command without the word 'tapper', with completion and history.",
            discussion: """
                Bare 'tapper' on a terminal starts it too. The prompt shows the registry the commands talk to \
                (tapper 127.0.0.1:8001>). Every CLI command works without the word 'tapper' and is parsed by the \
                same definitions, so 'help COMMAND' prints the same help as 'tapper COMMAND --help'.

                Shell words: 'use registry URL' and 'use gateway URL' switch targets; 'watch [-n SECONDS] COMMAND' \
                re-runs a command until Ctrl-C; 'exit', 'quit' or Ctrl-D leave.

                Keys (GNU readline): TAB completes commands, options, live service names, instance ids and \
                route paths (fetched from the registry, cached 3 s, never waiting more than 200 ms); Up/Down and \
                Ctrl-R search the history; Ctrl-C clears the line, or interrupts a running command or watch, \
                without leaving.

                History: $XDG_STATE_HOME/tapper/history (else ~/.local/state/tapper/history), the last 1000 \
                commands, a re-run command moves to the end instead of repeating.

                When standard input is not a terminal the shell runs it as a script, one command per line \
                ('#' starts a comment), prints only what the commands print, runs every line, and exits with \
                the status of the first command that failed (0 when none did).
                """
        )

        @Option(help: ArgumentHelp("Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).", valueName: "url"))
        public var registry: String?

        @Option(help: ArgumentHelp("Gateway URL (default: $TAPPER_GATEWAY_URL or http://127.0.0.1:8000).", valueName: "url"))
        public var gateway: String?

        @Flag(help: "Do not read or write the history file.")
        public var noHistory = false

        public init() {}

        public func run() async throws {
            if let registry { setenv("TAPPER_REGISTRY_URL", registry, 1) }
            if let gateway { setenv("TAPPER_GATEWAY_URL", gateway, 1) }
            let interactive = isatty(STDIN_FILENO) == 1
            let session = ShellSession(interactive: interactive, historyPath: noHistory ? nil : ShellHistory.defaultPath())
            let code = await session.run()
            if code != 0 { throw ExitCode(code) }
        }
    }
}
