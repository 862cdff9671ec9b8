import Foundation
import Testing
import TapperTesting

/// Sources the committed bash completion in a real bash and asks it for completions.
@Suite(.serialized) struct CompletionTests {
    func complete(_ words: [String], environment: [String: String] = [:]) throws -> [String] {
        let script = TapperProcess.packageRoot.appendingPathComponent("completions/tapper.bash").path
        let quoted = ([TapperProcess.binaryPath] + words).map { "'\($0)'" }.joined(separator: " ")
        let line = ([TapperProcess.binaryPath] + words).joined(separator: " ")
        let program = """
            source '\(script)'
            COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count); COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
            _tapper "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", program]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func subcommandsComplete() throws {
        #expect(try complete(["serv"]).contains("service"))
        #expect(try complete(["st"]) == ["status"])
        let sub = try complete(["service", "dere"])
        #expect(sub == ["deregister"])
    }

    @Test func liveServiceNamesAndInstancesComplete() async throws {
        let registry = try TapperProcess(["registry", "serve", "--port", "0"])
        defer { registry.signal(SIGKILL) }
        let port = try await registry.waitForListeningPort()
        let env = ["TAPPER_REGISTRY_URL": "http://127.0.0.1:\(port)"]
        _ = try await TapperProcess.run(["service", "register", "billing", "--url", "http://127.0.0.1:9301"], environment: env)
        #expect(try complete(["service", "deregister", "bi"], environment: env) == ["billing"])
        #expect(try complete(["service", "deregister", "billing", ""], environment: env) == ["127.0.0.1-9301"])
        #expect(try complete(["status", "--service", ""], environment: env) == ["billing"])
        // Unreachable registry: quick and silent.
        let started = ContinuousClock.now
        #expect(try complete(["service", "deregister", ""], environment: ["TAPPER_REGISTRY_URL": "http://127.0.0.1:1"]).isEmpty)
        #expect(ContinuousClock.now - started < .seconds(3))
        await registry.stop()
    }
}
