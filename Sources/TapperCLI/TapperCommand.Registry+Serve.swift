import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import TapperRegistry

extension TapperCommand.Registry {
    /// `tapper registry serve`
    public struct Serve: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Serve the registry API.",
            discussion: """
                Services register with PUT /v1/services/NAME/instances/ID, heartbeat within their TTL and \
                deregister with DELETE. Gateways follow GET /v1/catalog?index=N&wait=30s. The API is \
                described at /v1/openapi.json.

                Writes require 'Authorization: Bearer TOKEN' when --token-file or TAPPER_TOKEN is set.

                With --backend redis://…, etcd://… or consul://… several registries (and gateways started \
                with --registry and the same URL) share one catalog. While the store is down, writes \
                answer 503 naming it and reads serve the last snapshot marked "stale": true; everything \
                recovers by itself when the store returns.
                """
        )

        @Option(
            help: ArgumentHelp(
                "Read settings from this YAML file's 'registry:' section (keys are these options' names, e.g. backend: etcd://127.0.0.1:2379); flags and TAPPER_REGISTRY_* variables win over it. Token files are re-read when they change; other changes to the file take effect at restart.",
                valueName: "file"))
        public var config: String?

        @Option(help: "Address to listen on.")
        public var host: String = "127.0.0.1"

        @Option(help: "Port to listen on (0 picks a free port).")
        public var port: Int = 8001

        @Option(help: ArgumentHelp(
                "Where registrations are kept: 'memory', 'redis://[user:password@]host:port[/db]', 'etcd://host:port[,host:port…][/prefix]' or 'consul://host:port'.",
                valueName: "url"
            ))
        public var backend: String = "memory"

        @Option(help: ArgumentHelp("Keep the memory backend's registrations in DIR across restarts.", valueName: "dir"))
        public var dataDir: String?

        @Option(help: ArgumentHelp("File holding the bearer token required for writes (re-read when it changes).", valueName: "file"))
        public var tokenFile: String?

        @Option(help: ArgumentHelp("File holding a read-only bearer token: reads only, a write with it gets 403 (re-read when it changes).", valueName: "file"))
        public var readTokenFile: String?

        @Flag(help: "Reads need a token too (the write token or the read-only one); GET /v1/health stays open.")
        public var protectReads = false

        @Option(help: "Largest accepted request body in bytes.")
        public var maxBodyBytes: Int = 1 << 20

        @Option(help: ArgumentHelp(
                "Longest wait of a blocking query (GET /v1/catalog?index=N&wait=…); a longer one is cut to it. The default wait is 30s, or this when shorter.",
                valueName: "duration"
            ))
        public var maxWait: String = "10m"

        @OptionGroup public var logging: LoggingOptions

        public init() {}

        public func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
            if let problem = BackendURL.problem(backend) { throw ValidationError("--backend: \(problem)") }
            if dataDir != nil && backend.lowercased() != "memory" { throw ValidationError("--data-dir only applies to the memory backend") }
            guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
            guard let wait = DurationParser.parse(maxWait), wait > .zero else {
                throw ValidationError("--max-wait must be a positive duration like 500ms, 30s or 10m, got '\(maxWait)'")
            }
            for (flag, file) in [("--token-file", tokenFile), ("--read-token-file", readTokenFile)] {
                if let file, TokenSource.read(file: file) == nil { throw ValidationError("\(flag) '\(file)' cannot be read or is empty") }
            }
            let writeToken = tokenFile != nil || !(ProcessInfo.processInfo.environment["TAPPER_TOKEN"] ?? "").isEmpty
            if readTokenFile != nil && !writeToken {
                throw ValidationError("--read-token-file needs a write token too (--token-file or TAPPER_TOKEN); otherwise writes would stay open")
            }
            if protectReads && !writeToken && readTokenFile == nil {
                throw ValidationError("--protect-reads needs a token: --token-file or TAPPER_TOKEN (and optionally --read-token-file)")
            }
        }

        public func run() async throws {
            let logger = LogSetup.logger(label: "tapper.registry", options: logging)
            let token = TokenSource(file: tokenFile, environment: ProcessInfo.processInfo.environment["TAPPER_TOKEN"], logger: logger)
            let readToken = TokenSource(file: readTokenFile, environment: nil, logger: logger)
            if !RegistryServer.isLoopback(host) && !token.isConfigured {
                logger.warning("registry listens on \(host) without a token: anyone who can reach it can register services; set --token-file or TAPPER_TOKEN")
            }
            let backend = try BackendURL.make(backend, dataDirectory: dataDir, logger: logger)
            let server = RegistryServer(
                backend: backend,
                configuration: .init(
                    host: host, port: port, maxBodyBytes: maxBodyBytes, token: { token.current() }, readToken: { readToken.current() },
                    protectReads: protectReads, maxWait: DurationParser.parse(maxWait) ?? .seconds(600)
                )
            )
            let host = self.host
            let protectReads = self.protectReads
            let app = server.application(logger: logger) { port in
                logger.notice("registry listening on http://\(host):\(port) (backend: \(backend.displayName)\(token.isConfigured ? ", writes need the token" : "")\(protectReads ? ", reads need a token" : ""))")
            }
            var services: [any Service] = [app]
            if let invocation = ConfigInvocation.current.withLock({ $0 }), invocation.filePath != nil {
                // Nothing of the registry's changes live but its token files, which are re-read by
                // themselves: a changed file is checked and the keys that need a restart named.
                services.append(ConfigReloadService<Self>(invocation: invocation, logger: logger) { _, _ in [] })
            }
            let group = ServiceGroup(
                configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            )
            try await group.run()
        }
    }
}
