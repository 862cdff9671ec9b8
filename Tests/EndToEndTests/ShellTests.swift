import Foundation
import Testing
import TapperTesting

/// `tapper shell` driven for real: under a pseudo-terminal (tmux) and as a piped script.
@Suite(.serialized) struct ShellTests {
    struct Live {
        let gateway: TapperProcess
        let registryURL: String
        let env: [String: String]
    }

    func start() async throws -> Live {
        let p = try TapperProcess(["gateway", "serve", "--port", "0", "--registry-port", "0", "--no-access-log"])
        let registryPort = try await p.waitForListeningPort("embedded registry listening on http://")
        let gatewayPort = try await p.waitForListeningPort("gateway listening on http://")
        let registry = "http://127.0.0.1:\(registryPort)"
        return Live(gateway: p, registryURL: registry, env: ["TAPPER_REGISTRY_URL": registry, "TAPPER_GATEWAY_URL": "http://127.0.0.1:\(gatewayPort)"])
    }

    @Test func scriptFromStandardInput() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let live = try await start()
        defer { live.gateway.signal(SIGKILL) }

        func shell(_ script: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-script-\(UUID()).txt")
            try Data(script.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let p = try TapperProcess(["shell"], environment: live.env, stdin: try FileHandle(forReadingFrom: file))
            let status = try await p.waitForExit()
            try await poll("output drained") { p.readersFinished }
            return (status, p.stdout, p.stderr)
        }

        let ok = try await shell("""
            # register, then look
            service register users --url \(up.url) --route 'GET /users/{user_id}'
            service list
            route test GET /users/7
            help status
            """)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("registered users/127.0.0.1-"), "\(ok.stdout)")
        #expect(ok.stdout.contains("SERVICE") && ok.stdout.contains("users"))
        #expect(ok.stdout.contains("GET /users/7 → users") && ok.stdout.contains("parameters: user_id=7"), "\(ok.stdout)")
        #expect(!ok.stdout.contains("tapper>") && !ok.stdout.contains("shell —"), "a script run prints no prompt or banner")
        // `help COMMAND` is the CLI's own help for it.
        let cliHelp = try await TapperProcess.run(["status", "--help"], environment: live.env)
        #expect(ok.stdout.contains(cliHelp.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "help status differs from tapper status --help")

        // The first failure decides the status; later lines still run.
        let failing = try await shell("""
            bogus
            status --service nosuch --quiet
            service list --json
            """)
        #expect(failing.status == 64, "\(failing)")
        #expect(failing.stderr.contains("Unexpected argument 'bogus'"))
        #expect(failing.stdout.contains("\"services\""), "the line after the failures still ran: \(failing.stdout)")

        // exit stops the script with the first failure's status so far.
        let exited = try await shell("route test GET /users/1 --json\nservice deregister nosuch x\nexit\nservice list\n")
        #expect(exited.status != 0)
        #expect(!exited.stdout.contains("SERVICE"), "nothing after exit runs")
    }

    @Test func interactiveUnderAPseudoTerminal() async throws {
        let up = try await FakeUpstream(name: "a")
        defer { Task { await up.stop() } }
        let live = try await start()
        defer { live.gateway.signal(SIGKILL) }
        #expect(try await TapperProcess.run(["service", "register", "users", "--url", up.url, "--route", "GET /users/{user_id}"], environment: live.env).status == 0)

        let state = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-shell-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let command = "env NO_COLOR=1 XDG_STATE_HOME=\(state) TAPPER_REGISTRY_URL=\(live.registryURL) TAPPER_GATEWAY_URL=\(live.env["TAPPER_GATEWAY_URL"]!) \(TapperProcess.binaryPath)"
        let prompt = "tapper \(live.registryURL.dropFirst("http://".count))>"

        let term = try Tmux(command)  // bare `tapper` on a terminal opens the shell
        defer { term.kill() }
        try await poll("the prompt appears", timeout: .seconds(20)) { try term.lastLine().hasPrefix(prompt) }

        // TAB completes a command, then a live service name.
        try term.type("sta")
        try term.keys("Tab")
        try await poll("'sta' completes to 'status'") { try term.lastLine() == "\(prompt) status" }
        try term.type("--ser")
        try term.keys("Tab")
        try term.type("us")
        try term.keys("Tab")
        try await poll("the service name completes") { try term.lastLine() == "\(prompt) status --service users" }
        try term.keys("Enter")
        try await poll("status ran") { try term.screen().contains("127.0.0.1-") && term.lastLine() == prompt }

        // An invalid command prints an error and the prompt comes back.
        try term.type("frobnicate")
        try term.keys("Enter")
        try await poll("the error is printed") { try term.screen().contains("Error: Unexpected argument 'frobnicate'") && term.lastLine() == prompt }

        // Ctrl-C clears a half-typed line without leaving.
        try term.type("service list --this-is-half")
        try term.keys("C-c")
        try await poll("a fresh prompt") { try term.lastLine() == prompt }
        try term.keys("Enter")
        #expect(try !term.screen().contains("this-is-half'"), "the cleared line never ran")
        #expect(try !term.exited())

        // Up recalls the previous command.
        try term.keys("Up")
        try await poll("Up recalls the last command") { try term.lastLine() == "\(prompt) frobnicate" }
        try term.keys("C-u", "C-d")
        try await poll("Ctrl-D leaves") { try term.exited() }

        // History survives a restart.
        let again = try Tmux(command + " shell")
        defer { again.kill() }
        try await poll("the prompt appears again", timeout: .seconds(20)) { try again.lastLine().hasPrefix(prompt) }
        try again.keys("Up")
        try await poll("history from the last session") { try again.lastLine() == "\(prompt) frobnicate" }
        try again.keys("Up")
        try await poll("and the one before") { try again.lastLine() == "\(prompt) status --service users" }

        // Ctrl-C interrupts a running watch without leaving the shell.
        try again.keys("C-u")
        try again.type("status --watch")
        try again.keys("Enter")
        try await poll("the watch draws") { try again.screen().contains("SERVICE") }
        try again.keys("C-c")
        try await poll("the prompt is back") { try again.lastLine() == prompt }
        try again.type("exit")
        try again.keys("Enter")
        try await poll("exit leaves") { try again.exited() }
    }
}
