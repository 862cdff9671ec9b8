import Foundation
import Synchronization

/// The built `tapper` binary run as a child process, with its output captured.
///
/// Readiness is detected by polling the captured output with a deadline, never by sleeping a
/// fixed time.
public final class TapperProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched from the owning test; output is behind a Mutex.
    public let process: Process
    final class Buffer: Sendable {
        let text = Mutex("")
        func append(_ s: String) { text.withLock { $0 += s } }
        var value: String { text.withLock { $0 } }
    }
    private let stdoutBuffer = Buffer()
    private let stderrBuffer = Buffer()
    private let readers: [Thread]

    /// The package root, found from this file's location.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `$TAPPER_BIN`, or `.build/debug/tapper` in the package.
    public static var binaryPath: String {
        if let p = ProcessInfo.processInfo.environment["TAPPER_BIN"] { return p }
        return packageRoot.appendingPathComponent(".build/debug/tapper").path
    }

    /// Starts `tapper ARGS…`.
    public init(_ arguments: [String], environment: [String: String] = [:], stdin: FileHandle? = nil) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binaryPath) else {
            throw TestFailure("the tapper binary is missing at \(Self.binaryPath); run 'swift build' first (scripts/test does)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binaryPath)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        env.removeValue(forKey: "TAPPER_REGISTRY_URL")
        env.removeValue(forKey: "TAPPER_TOKEN")
        // The servers' own layers (TAPPER_GATEWAY_*, TAPPER_REGISTRY_*) come from the test only.
        for key in env.keys where key.hasPrefix("TAPPER_GATEWAY_") || key.hasPrefix("TAPPER_REGISTRY_") { env.removeValue(forKey: key) }
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = stdin ?? FileHandle.nullDevice
        process = p
        let outBuf = stdoutBuffer
        let errBuf = stderrBuffer
        readers = [Self.reader(out.fileHandleForReading, into: outBuf), Self.reader(err.fileHandleForReading, into: errBuf)]
        try p.run()
        for r in readers { r.start() }
    }

    private static func reader(_ handle: FileHandle, into buffer: Buffer) -> Thread {
        Thread {
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                let s = String(decoding: data, as: UTF8.self)
                buffer.append(s)
            }
        }
    }

    public var stdout: String { stdoutBuffer.value }

    /// True once both output pipes reached end of file (everything the process wrote is captured).
    public var readersFinished: Bool { readers.allSatisfy(\.isFinished) }
    public var stderr: String { stderrBuffer.value }
    public var pid: Int32 { process.processIdentifier }

    /// Polls the output until `predicate` finds what it needs or `timeout` passes.
    public func waitForOutput<T>(timeout: Duration = .seconds(20), _ predicate: (_ stdout: String, _ stderr: String) -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let v = predicate(stdout, stderr) { return v }
            if !process.isRunning, let v = predicate(stdout, stderr) { return v }
            if !process.isRunning {
                throw TestFailure("tapper exited with \(process.terminationStatus) before the expected output.\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestFailure("timed out waiting for output.\nstdout: \(stdout)\nstderr: \(stderr)")
    }

    /// Waits for a `listening on http://HOST:PORT` line and returns the port.
    public func waitForListeningPort(_ marker: String = "listening on http://", timeout: Duration = .seconds(20)) async throws -> Int {
        try await waitForOutput(timeout: timeout) { _, err in
            guard let r = err.range(of: marker) else { return nil }
            let rest = err[r.upperBound...]
            guard let colon = rest.firstIndex(of: ":") else { return nil }
            let digits = rest[rest.index(after: colon)...].prefix { $0.isNumber }
            return Int(digits)
        }
    }

    /// Sends a signal.
    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the process to exit (polling with a deadline) and returns its status.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                process.terminate()
                throw TestFailure("tapper did not exit in time.\nstdout: \(stdout)\nstderr: \(stderr)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        for r in readers where !r.isFinished { _ = r }
        return process.terminationStatus
    }

    /// Stops the process (SIGTERM, then SIGKILL) if it still runs.
    public func stop() async {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if (try? await waitForExit(timeout: .seconds(5))) == nil { signal(SIGKILL) }
    }

    /// Runs `tapper ARGS…` to completion and returns (status, stdout, stderr).
    public static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let p = try TapperProcess(arguments, environment: environment)
        let status = try await p.waitForExit(timeout: timeout)
        // Drain readers: the pipes close when the process exits.
        let deadline = ContinuousClock.now + .seconds(5)
        while p.readers.contains(where: { !$0.isFinished }) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        return (status, p.stdout, p.stderr)
    }
}
