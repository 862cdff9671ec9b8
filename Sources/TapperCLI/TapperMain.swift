import ArgumentParser

#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process entry point, so `main.swift` stays one line.
public enum TapperMain {
    public static func run() async {
        // Line-buffer stdout even when it is a pipe, so scripts and supervisors see each line
        // as it happens (e.g. "registered …" from --keep-alive).
        setvbuf(stdout, nil, _IOLBF, 0)
        // Bare `tapper` on a terminal opens the shell; anywhere else it prints the help as before.
        if CommandLine.arguments.count == 1 && isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1 {
            await TapperCommand.main(["shell"])
        } else {
            await TapperCommand.main(ConfigInvocation.layeredArguments(Array(CommandLine.arguments.dropFirst())))
        }
    }
}
