import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real terminal for interactive tests: a private tmux server (its own socket) running one
/// command in a detached session, driven with send-keys and read with capture-pane.
public final class Tmux: @unchecked Sendable {
    public let socket: String
    let session = "t"

    /// tmux's path; a missing tmux is an error (scripts/test installs it), never a skip.
    public static func path() throws -> String {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/tmux") {
            return dir + "/tmux"
        }
        throw TestFailure("tmux is not installed (apt-get install tmux; scripts/test installs it)")
    }

    /// Starts `command` (a shell command line) in a 160×50 terminal.
    public init(_ command: String) throws {
        socket = "tapper-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try run(["new-session", "-d", "-s", session, "-x", "160", "-y", "50", command])
        // Keep the pane after the command exits, so a test can see that it exited.
        try run(["set-option", "-t", session, "remain-on-exit", "on"])
    }

    deinit { kill() }

    /// Stops the tmux server and the command in it. Tests call it in a `defer`: a deinit is not
    /// guaranteed to run before the test process exits, and a leftover server keeps its command alive.
    public func kill() { _ = try? run(["kill-server"]) }

    /// Runs tmux and returns its standard output. posix_spawn + waitpid rather than Foundation's
    /// Process: the first call forks the tmux server, which must not inherit any pipe of ours.
    @discardableResult
    func run(_ args: [String]) throws -> String {
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("tmux-out-\(UUID())").path
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = [try Self.path(), "-L", socket, "-f", "/dev/null"] + args
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        // The tmux server must start with no blocked signals: a test thread's mask (inherited
        // through posix_spawn) with SIGCHLD and SIGTERM blocked left servers that neither reaped
        // their pane nor obeyed kill-server, outliving the test run.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
        guard rc == 0 else { throw TestFailure("cannot start tmux: \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        guard status == 0 else { throw TestFailure("tmux \(args.joined(separator: " ")) failed with status \(status)") }
        return output
    }

    /// Types text literally (no key-name interpretation).
    public func type(_ text: String) throws { try run(["send-keys", "-t", session, "-l", "--", text]) }

    /// Sends tmux key names: "Tab", "Enter", "Up", "C-c", "C-d", "C-u".
    public func keys(_ names: String...) throws { try run(["send-keys", "-t", session] + names) }

    /// The visible screen, trailing blank lines removed.
    public func screen() throws -> String {
        try run(["capture-pane", "-p", "-t", session]).split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
            .reversed().drop { $0.isEmpty }.reversed().joined(separator: "\n")
    }

    /// The last non-blank line of the screen (where the cursor usually is).
    public func lastLine() throws -> String { try screen().split(separator: "\n").last.map(String.init) ?? "" }

    /// True once the command in the pane has exited.
    public func exited() throws -> Bool {
        try run(["display-message", "-p", "-t", session, "#{pane_dead}"]).trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }
}
