import Foundation
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` or `etcd` process for tests, on a free 127.0.0.1 port with a temporary
/// data directory, stopped by PID. ``kill()`` and ``start()`` restart it on the same port and data
/// directory (to test reconnection).
public final class StoreServer: @unchecked Sendable {
    // @unchecked: `process` is only replaced by the owning test, between awaits.
    public enum Kind: String, Sendable {
        case redis, etcd

        public var binary: String { self == .redis ? "/usr/bin/redis-server" : "/usr/bin/etcd" }
        /// Whether the server binary is installed (`PATH` is not searched: the tests name the
        /// Debian packages' paths, which scripts/test installs).
        public var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    }

    public let kind: Kind
    public let port: Int
    let peerPort: Int
    public let dataDirectory: String
    /// Extra server arguments (e.g. `--requirepass`).
    public let extraArguments: [String]
    private var process: Process?
    private var log: FileHandle?

    /// Whether tests must fail (not skip) when a server binary is missing: when `CI` is set.
    public static var required: Bool { ProcessInfo.processInfo.environment["CI"] != nil }

    /// Whether tests of `kind` should run: installed, or required (then starting fails loudly).
    public static func shouldRun(_ kind: Kind) -> Bool { kind.isInstalled || required }

    /// `redis://127.0.0.1:PORT` or `etcd://127.0.0.1:PORT`.
    public var url: String { "\(kind.rawValue)://127.0.0.1:\(port)" }

    /// Starts a server and waits (polling with a deadline) until it answers.
    public init(_ kind: Kind, extraArguments: [String] = []) async throws {
        guard kind.isInstalled else {
            throw TestFailure("\(kind.binary) is not installed (apt-get install \(kind == .redis ? "redis-server" : "etcd-server"); scripts/test does it)")
        }
        self.kind = kind
        self.extraArguments = extraArguments
        self.port = try Self.freePort()
        self.peerPort = try Self.freePort()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-\(kind.rawValue)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        self.dataDirectory = dir
        try await start()
    }

    var arguments: [String] {
        switch kind {
        case .redis:
            return [
                "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always",
                "--dir", dataDirectory, "--daemonize", "no", "--protected-mode", "yes",
            ]
        case .etcd:
            let c = "http://127.0.0.1:\(port)"
            let p = "http://127.0.0.1:\(peerPort)"
            return [
                "--name", "t", "--data-dir", dataDirectory + "/etcd", "--listen-client-urls", c, "--advertise-client-urls", c,
                "--listen-peer-urls", p, "--initial-advertise-peer-urls", p, "--initial-cluster", "t=\(p)",
                "--log-level", "error",
            ]
        }
    }

    /// (Re)starts the process on the same port and data directory and waits until it answers.
    public func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kind.binary)
        p.arguments = arguments + extraArguments
        let logPath = dataDirectory + "/server.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        log = handle
        let port = self.port
        let kind = self.kind
        try await poll("\(kind.rawValue) answers on port \(port)", timeout: .seconds(20), every: .milliseconds(20)) {
            guard p.isRunning else {
                let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw TestFailure("\(kind.binary) exited with \(p.terminationStatus): \(text.suffix(2000))")
            }
            switch kind {
            case .redis: return Self.redisPing(port: port)
            case .etcd: return (try? await httpRequest(.GET, "http://127.0.0.1:\(port)/health", timeout: .seconds(1)))?.status == 200
            }
        }
    }

    /// Kills the process (SIGKILL, like a crash) and waits until it is gone.
    public func kill() async throws {
        guard let p = process, p.isRunning else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        try await poll("\(kind.rawValue) (pid \(p.processIdentifier)) exits", every: .milliseconds(10)) { !p.isRunning }
        process = nil
        try? log?.close()
        log = nil
    }

    /// Stops the server and removes its data directory.
    public func stop() async {
        try? await kill()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    /// A port that was free a moment ago (bound to port 0, then released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket failed") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw TestFailure("could not find a free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Sends `PING` over a plain socket; true on any reply (`+PONG`, or `-NOAUTH` when a password
    /// is required).
    static func redisPing(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return false }
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let ping = Array("PING\r\n".utf8)
        guard ping.withUnsafeBytes({ send(fd, $0.baseAddress!, ping.count, Int32(MSG_NOSIGNAL)) }) == ping.count else { return false }
        var buf = [UInt8](repeating: 0, count: 64)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 64, 0) }
        return n > 0 && (buf[0] == UInt8(ascii: "+") || buf[0] == UInt8(ascii: "-"))
    }
}
