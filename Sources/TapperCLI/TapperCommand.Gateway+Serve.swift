import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TapperClient
import TapperCore
import TapperGateway
import TapperRegistry
import Synchronization
import UnixSignals

extension TapperCommand.Gateway {
    /// `tapper gateway serve`
    public struct Serve: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Route requests to healthy service instances.",
            discussion: """
                Without --registry the gateway runs an embedded registry (memory backend) and serves its API \
                on 127.0.0.1:--registry-port, so 'tapper gateway serve' alone is a working system. With \
                --registry http://HOST:PORT it follows that registry with blocking queries. With --registry \
                etcd://HOST:PORT, redis://HOST:PORT or consul://HOST:PORT it reads the registry's shared store directly (no \
                registry process needed) and follows its changes.

                The gateway answers /health itself and serves /_tapper/routes, /_tapper/status, \
                /_tapper/metrics, /_tapper/traffic, /_tapper/explain and the live page /_tapper/dashboard. It \
                serves one OpenAPI 3.1 document merging its services' documents at /openapi.json, and \
                Swagger UI for it at /docs (bundled, works offline; --docs-path, --openapi-path, --no-docs). Requests are matched against the registered route templates (literal > \
                typed parameter > parameter > catch-all), then proxied byte-exact to one instance.
                """
        )

        @Option(
            help: ArgumentHelp(
                "Read settings from this YAML file's 'gateway:' section (keys are these options' names, e.g. rate-limit: 100/s); flags and TAPPER_GATEWAY_* variables win over it. Re-read when it changes (checked every second and on SIGHUP): the rate limits apply at once, the rest at restart.",
                valueName: "file"))
        public var config: String?

        @Option(help: "Address to listen on.")
        public var host: String = "127.0.0.1"

        @Option(help: "Port to listen on (0 picks a free port).")
        public var port: Int = 8000

        @Option(help: ArgumentHelp("Follow this registry (http://…) or read its store (etcd://…, redis://…, consul://…) instead of running an embedded one.", valueName: "url"))
        public var registry: String?

        @Option(help: "Port of the embedded registry's API (ignored with --registry; 0 picks a free port).")
        public var registryPort: Int = 8001

        @Option(help: ArgumentHelp("Keep the embedded registry's registrations in DIR across restarts.", valueName: "dir"))
        public var dataDir: String?

        @Option(help: ArgumentHelp("Token file for the embedded registry's writes, or the remote registry's reads.", valueName: "file"))
        public var tokenFile: String?

        @Option(help: ArgumentHelp("Seconds between full resyncs with the registry.", valueName: "seconds"))
        public var discoveryInterval: Double = 30

        @Option(help: ArgumentHelp("Upstream connect and response timeout in seconds (→ 504).", valueName: "seconds"))
        public var timeout: Double = 5

        @Option(help: ArgumentHelp("Default load balancer.", valueName: "name"))
        public var loadBalancer: String = "round-robin"

        @Option(
            help: ArgumentHelp(
                "Gateway-wide request rate limit per key, e.g. 100/s or 6000/m (token bucket; over it: 429 with Retry-After and RateLimit headers).",
                valueName: "N/s|N/m|N/h"))
        public var rateLimit: String?

        @Option(help: ArgumentHelp("What --rate-limit counts by: ip (the client address), subject (the --auth subject) or header:NAME.", valueName: "key"))
        public var rateLimitKey: String = "ip"

        @Option(
            help: ArgumentHelp(
                "Where the rate limits are counted: local (each gateway alone), shared (in the --registry redis://… or etcd://… store, so gateways sharing it share every limit), or a redis://… or etcd://… URL.",
                valueName: "local|shared|url"))
        public var rateLimitStore: String = "local"

        @Option(help: ArgumentHelp("While the shared rate-limit store is down: open (each gateway limits on its own) or closed (limited requests get 503).", valueName: "open|closed"))
        public var rateLimitFailure: String = "open"

        @Option(help: ArgumentHelp("Seconds between syncs with the shared rate-limit store (how far the gateways together may overshoot a limit).", valueName: "seconds"))
        public var rateLimitSync: Double = 0.1

        @Option(
            help: ArgumentHelp(
                "Request header that pins a service version, e.g. 'X-Tapper-Version: 2.0.0' (a pinned version with no healthy instance gets 503); '' turns pinning by header off.",
                valueName: "name"))
        public var versionHeader: String = "X-Tapper-Version"

        @Option(
            help: ArgumentHelp(
                "Cookie that pins a service version (a version that is gone falls back to the traffic split); '' turns it off.", valueName: "name"))
        public var versionCookie: String = "tapper-version"

        @Option(
            parsing: .upToNextOption,
            help: ArgumentHelp(
                "Proxies whose X-Forwarded-For/-Proto/-Host are believed (CIDRs or addresses, e.g. 10.0.0.0/8 ::1); from anyone else they are replaced by the peer address.",
                valueName: "cidr"
            )
        )
        public var trustedProxies: [String] = []

        @Option(help: ArgumentHelp("File holding the bearer token /_tapper/* needs (re-read when it changes); /health stays open.", valueName: "file"))
        public var adminTokenFile: String?

        @Option(help: ArgumentHelp("Serve /_tapper/* (and /health) on this port instead of the main one (0 picks a free port).", valueName: "port"))
        public var adminPort: Int?

        @Option(help: ArgumentHelp("Address of the --admin-port listener.", valueName: "host"))
        public var adminHost: String = "127.0.0.1"

        @Option(help: ArgumentHelp("Serve HTTPS on this port too, beside the plain one (needs --tls-cert and --tls-key; 0 picks a free port).", valueName: "port"))
        public var tlsPort: Int?

        @Option(
            help: ArgumentHelp(
                "PEM certificate chain (leaf first) for --tls-port; repeat with --tls-key for more names (the first is the default, the others are chosen by SNI). Re-read when it changes.",
                valueName: "file"))
        public var tlsCert: [String] = []

        @Option(help: ArgumentHelp("PEM private key of the --tls-cert at the same position.", valueName: "file"))
        public var tlsKey: [String] = []

        @Flag(help: "Speak HTTP/1.1 only: no h2 in TLS's ALPN and no h2c with prior knowledge on the plain port.")
        public var noHttp2 = false

        @Option(help: ArgumentHelp("Most HTTP/2 streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).", valueName: "n"))
        public var http2MaxStreams: Int = 100

        @Option(
            help: ArgumentHelp(
                "How to speak to instances whose registration names no protocol: http1 (HTTP/1.1 keep-alive) or h2c (HTTP/2 with prior knowledge, multiplexed; gRPC needs it).",
                valueName: "protocol"))
        public var upstreamProtocol: UpstreamProtocol = .http1

        @Option(help: ArgumentHelp("Who may use proxied routes: none, api-key (--api-keys-file) or jwt (--jwt-key-file). Public routes and /health are always open.", valueName: "mode"))
        public var auth: AuthMode = .none

        @Option(help: ArgumentHelp("With --auth api-key: one key a line, KEY or NAME:KEY (re-read when it changes).", valueName: "file"))
        public var apiKeysFile: String?

        @Option(
            name: [.customLong("jwt-key-file"), .customLong("jwks-file")],
            help: ArgumentHelp("With --auth jwt: a JWKS file, a PEM public key or certificate (RS256, ES256), or an HS256 secret (re-read when it changes).", valueName: "file")
        )
        public var jwtKeyFile: String?

        @Option(help: ArgumentHelp("With --auth jwt: the algorithm of --jwt-key-file (HS256, RS256, ES256; default: from the file).", valueName: "alg"))
        public var jwtAlgorithm: String?

        @Option(help: ArgumentHelp("With --auth jwt: the iss claim tokens must carry.", valueName: "issuer"))
        public var jwtIssuer: String?

        @Option(help: ArgumentHelp("With --auth jwt: an aud a token must name (repeatable; any one suffices).", valueName: "audience"))
        public var jwtAudience: [String] = []

        @Option(help: ArgumentHelp("With --auth jwt: seconds of clock skew allowed on exp and nbf.", valueName: "seconds"))
        public var jwtLeeway: Double = 60

        @Option(
            help: ArgumentHelp(
                "Export a span per proxied request over OTLP/HTTP (protobuf) to this receiver, e.g. http://127.0.0.1:4318 (/v1/traces is appended); default: $OTEL_EXPORTER_OTLP_ENDPOINT. Without either, tracing is off and traceparent passes through untouched.",
                valueName: "url"))
        public var otlpEndpoint: String?

        @Option(help: ArgumentHelp("With tracing on: the share of new traces recorded, 0-1 (an incoming traceparent's sampled flag decides for its trace).", valueName: "rate"))
        public var traceSampleRate: Double = 1.0

        @Option(help: ArgumentHelp("With tracing on: the service.name of the gateway's spans.", valueName: "name"))
        public var otlpServiceName: String = "tapper-gateway"

        @Option(help: "Event-loop threads (0: one per core).")
        public var threads: Int = 0

        @Option(help: ArgumentHelp("Largest request body in bytes (→ 413).", valueName: "bytes"))
        public var maxBodySize: Int64 = 2 * 1024 * 1024 * 1024

        @Option(help: ArgumentHelp("Largest request head in bytes (→ 431).", valueName: "bytes"))
        public var maxHeaderSize: Int = 32 * 1024

        @Option(help: ArgumentHelp("Seconds a client has to send its request head (→ 408).", valueName: "seconds"))
        public var headerTimeout: Double = 10

        @Option(help: ArgumentHelp("Seconds before an idle client connection is closed.", valueName: "seconds"))
        public var idleTimeout: Double = 60

        @Option(
            help: ArgumentHelp(
                "Seconds an upgraded connection (WebSocket) may pass no byte either way before it is closed; request timeouts do not apply to it.",
                valueName: "seconds"))
        public var tunnelIdleTimeout: Double = 3600

        @Option(help: ArgumentHelp("Seconds in-flight requests get to finish on SIGTERM.", valueName: "seconds"))
        public var drainTimeout: Double = 30

        @Option(help: ArgumentHelp("Where the gateway serves Swagger UI for the merged document of its services.", valueName: "path"))
        public var docsPath: String = "/docs"

        @Option(help: ArgumentHelp("Where the gateway serves the merged OpenAPI 3.1 document of its services.", valueName: "path"))
        public var openapiPath: String = "/openapi.json"

        @Flag(help: "Serve neither the merged OpenAPI document nor Swagger UI (frees --openapi-path and --docs-path for routes).")
        public var noDocs = false

        @Flag(help: "Do not write an access-log line per request.")
        public var noAccessLog = false

        @Option(help: ArgumentHelp("Seconds between active health probes of each instance.", valueName: "seconds"))
        public var healthInterval: Double = 10

        @Option(help: ArgumentHelp("Seconds a health probe may take.", valueName: "seconds"))
        public var healthTimeout: Double = 2

        @Option(help: ArgumentHelp("Failed probes in a row before an instance is taken out.", valueName: "n"))
        public var healthFall: Int = 3

        @Option(help: ArgumentHelp("Passed probes in a row before it is taken back.", valueName: "n"))
        public var healthRise: Int = 2

        @Flag(help: "Do not send active health probes (passive checks still apply).")
        public var noHealthChecks = false

        @Option(help: ArgumentHelp("Consecutive failed requests (errors or 5xx) that eject an instance.", valueName: "n"))
        public var outlierFailures: Int = 5

        @Option(help: ArgumentHelp("Seconds of the first ejection; each further one lasts longer.", valueName: "seconds"))
        public var ejectionTime: Double = 30

        @Option(help: ArgumentHelp("Largest share of a service's instances ejected at once, in percent.", valueName: "percent"))
        public var maxEjectionPercent: Double = 50

        @Flag(help: "When every instance of a service is down, route to all of them instead of answering 503.")
        public var panicRouting = false

        @OptionGroup public var logging: LoggingOptions

        public init() {}

        public func validate() throws {
            do {
                _ = try rateLimit.map { s throws(FieldError) in try RateLimit(parsing: s) }
                var probe = GatewayConfiguration()
                try probe.setRateLimit(RateLimit(requests: 1, windowNanos: 1_000_000_000), key: rateLimitKey)
            } catch {
                throw ValidationError("--\(error.field): \(error.message)")
            }
            _ = try limitSharing()
            if !versionHeader.isEmpty && !Self.isToken(versionHeader) {
                throw ValidationError("--version-header: '\(versionHeader)' is not a header name")
            }
            if !versionCookie.isEmpty && !Self.isToken(versionCookie) {
                throw ValidationError("--version-cookie: '\(versionCookie)' is not a cookie name")
            }
            guard (0...65535).contains(port), (0...65535).contains(registryPort) else { throw ValidationError("ports must be between 0 and 65535") }
            if let registry {
                let lower = registry.lowercased()
                if BackendURL.isStore(registry) {
                    if let problem = BackendURL.problem(registry) { throw ValidationError("--registry: \(problem)") }
                } else if !(lower.hasPrefix("http://") || lower.hasPrefix("https://")) {
                    throw ValidationError("--registry must be an http://, https://, etcd://, redis:// or consul:// URL, got '\(registry)'")
                }
            }
            guard timeout > 0, discoveryInterval > 0, headerTimeout > 0, idleTimeout > 0, tunnelIdleTimeout > 0, drainTimeout >= 0 else {
                throw ValidationError("timeouts and intervals must be positive")
            }
            guard BalancerFactory().names.contains(loadBalancer) else {
                throw ValidationError("--load-balancer must be one of \(BalancerFactory().names.joined(separator: ", "))")
            }
            guard healthInterval > 0, healthTimeout > 0, healthFall >= 1, healthRise >= 1, outlierFailures >= 1, ejectionTime > 0,
                (0...100).contains(maxEjectionPercent)
            else {
                throw ValidationError("health and outlier settings must be positive (--max-ejection-percent 0-100)")
            }
            guard threads >= 0, maxBodySize > 0, maxHeaderSize >= 1024 else { throw ValidationError("--threads, --max-body-size and --max-header-size must be positive") }
            _ = try trustedNetworks()
            if let adminTokenFile, TokenSource.read(file: adminTokenFile) == nil {
                throw ValidationError("--admin-token-file '\(adminTokenFile)' cannot be read or is empty")
            }
            for (flag, value) in [("--docs-path", docsPath), ("--openapi-path", openapiPath)] {
                if let problem = Self.docsPathProblem(value) { throw ValidationError("\(flag): '\(value)' \(problem)") }
            }
            if docsPath == openapiPath { throw ValidationError("--docs-path and --openapi-path must differ") }
            if let endpoint = resolvedOTLPEndpoint {
                let lower = endpoint.lowercased()
                guard (lower.hasPrefix("http://") || lower.hasPrefix("https://")), endpoint.utf8.count > 8, !endpoint.contains(" ") else {
                    throw ValidationError("--otlp-endpoint must be an http:// or https:// URL, got '\(endpoint)'")
                }
            }
            guard (0...1).contains(traceSampleRate) else { throw ValidationError("--trace-sample-rate must be between 0 and 1") }
            guard !otlpServiceName.isEmpty else { throw ValidationError("--otlp-service-name must not be empty") }
            if let adminPort, !(0...65535).contains(adminPort) { throw ValidationError("--admin-port must be between 0 and 65535") }
            try validateTLS()
            _ = try authProvider(logger: Logger(label: "tapper.validate", factory: { _ in SwiftLogNoOpLogHandler() }))
        }

        /// `--auth`, `--api-keys-file`, `--jwt-*` as a provider (nil for `--auth none`).
        func authProvider(logger: Logger) throws -> (any GatewayAuthProvider)? {
            var algorithm: JWTAuthProvider.Algorithm? = nil
            if let jwtAlgorithm {
                guard let parsed = JWTAuthProvider.Algorithm(rawValue: jwtAlgorithm.uppercased()) else {
                    throw ValidationError("--jwt-algorithm must be one of HS256, RS256, ES256, got '\(jwtAlgorithm)'")
                }
                algorithm = parsed
            }
            switch auth {
            case .none:
                if apiKeysFile != nil || jwtKeyFile != nil { throw ValidationError("--api-keys-file and --jwt-key-file need --auth api-key or --auth jwt") }
                return nil
            case .apiKey:
                guard let apiKeysFile else { throw ValidationError("--auth api-key needs --api-keys-file FILE") }
                do {
                    return try APIKeyAuthProvider(keysFile: apiKeysFile, logger: logger)
                } catch {
                    throw ValidationError("--api-keys-file \(error)")
                }
            case .jwt:
                guard let jwtKeyFile else { throw ValidationError("--auth jwt needs --jwt-key-file FILE (a JWKS, a PEM public key, or an HS256 secret)") }
                guard jwtLeeway >= 0 else { throw ValidationError("--jwt-leeway must not be negative") }
                do {
                    return try JWTAuthProvider(
                        keyFile: jwtKeyFile, algorithm: algorithm, rules: TokenClaimRules(issuer: jwtIssuer, audiences: jwtAudience, leewaySeconds: jwtLeeway),
                        logger: logger
                    )
                } catch {
                    throw ValidationError("--jwt-key-file \(error)")
                }
            }
        }

        /// `--rate-limit-store`, `--rate-limit-failure` and `--rate-limit-sync` (nil: local limits).
        func limitSharing() throws -> LimitSharing? {
            guard let failure = LimitSharing.Failure(rawValue: rateLimitFailure.lowercased()) else {
                throw ValidationError("--rate-limit-failure must be open or closed, got '\(rateLimitFailure)'")
            }
            guard rateLimitSync > 0 && rateLimitSync <= 60 else { throw ValidationError("--rate-limit-sync must be between 0 and 60 seconds") }
            let url: String
            switch rateLimitStore.lowercased() {
            case "local":
                return nil
            case "shared":
                guard let registry, registry.lowercased().hasPrefix("redis://") || registry.lowercased().hasPrefix("etcd://") else {
                    throw ValidationError(
                        "--rate-limit-store shared counts in the registry's store, so it needs --registry redis://… or etcd://…; otherwise give the store: --rate-limit-store redis://HOST:PORT")
                }
                url = registry
            default:
                url = rateLimitStore
                if let problem = BackendURL.problem(url), BackendURL.isStore(url) { throw ValidationError("--rate-limit-store: \(problem)") }
            }
            return LimitSharing(store: try BackendURL.counterStore(url), failure: failure, interval: .milliseconds(Int64(rateLimitSync * 1000)))
        }

        /// Why a `--docs-path` or `--openapi-path` cannot be used, or nil.
        static func docsPathProblem(_ path: String) -> String? {
            let allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/-"
            guard path.hasPrefix("/"), path.count > 1, !path.hasSuffix("/") else { return "must be a path like /docs (starting with '/', not ending with one)" }
            guard path.allSatisfy({ allowed.contains($0) }) else { return "may hold only letters, digits and . _ ~ - /" }
            guard !path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }), !path.contains("//") else { return "must not have empty, . or .. segments" }
            if path == "/health" || path.hasPrefix("/_tapper/") || path == "/_tapper" { return "belongs to the gateway (/health, /_tapper/)" }
            return nil
        }

        /// `--otlp-endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT` (the OpenTelemetry SDKs' variable)
        /// when the flag is absent; nil (tracing off) when neither is set or the variable is empty.
        var resolvedOTLPEndpoint: String? {
            if let otlpEndpoint { return otlpEndpoint }
            let fromEnvironment = ProcessInfo.processInfo.environment["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? ""
            return fromEnvironment.isEmpty ? nil : fromEnvironment
        }

        /// The span exporter of `--otlp-endpoint` (nil: tracing off).
        func traceExporter(logger: Logger) -> TraceExporter? {
            guard let endpoint = resolvedOTLPEndpoint else { return nil }
            var settings = TraceExporter.Settings(endpoint: endpoint)
            settings.sampleRate = traceSampleRate
            settings.serviceName = otlpServiceName
            return TraceExporter(settings: settings, version: TapperCommand.version, logger: logger)
        }

        /// An HTTP token (RFC 9110 §5.6.2): what a header or cookie name may be.
        static func isToken(_ s: String) -> Bool {
            s.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || "!#$%&'*+-.^_`|~".utf8.contains(b)
            }
        }

        /// `--tls-port`, `--tls-cert`, `--tls-key`: in pairs, loadable now.
        func validateTLS() throws {
            guard (1...100_000).contains(http2MaxStreams) else { throw ValidationError("--http2-max-streams must be between 1 and 100000") }
            guard let tlsPort else {
                if !tlsCert.isEmpty || !tlsKey.isEmpty { throw ValidationError("--tls-cert and --tls-key need --tls-port") }
                return
            }
            guard (0...65535).contains(tlsPort) else { throw ValidationError("--tls-port must be between 0 and 65535") }
            if tlsPort != 0 && tlsPort == port { throw ValidationError("--tls-port must differ from --port") }
            guard !tlsCert.isEmpty else { throw ValidationError("--tls-port needs --tls-cert FILE and --tls-key FILE") }
            guard tlsCert.count == tlsKey.count else {
                throw ValidationError("--tls-cert and --tls-key come in pairs: got \(tlsCert.count) certificate(s) and \(tlsKey.count) key(s)")
            }
            do {
                try TLSCertificateFiles.check(tlsPairs)
            } catch {
                throw ValidationError("\(error)")
            }
        }

        var tlsPairs: [TLSCertificateFiles] { zip(tlsCert, tlsKey).map { TLSCertificateFiles(certificate: $0, key: $1) } }

        /// `--trusted-proxies`, each value possibly a comma-separated list.
        func trustedNetworks() throws -> [CIDR] {
            do {
                return try trustedProxies.flatMap { $0.split(separator: ",") }.map { text throws(FieldError) in try CIDR(parsing: String(text), field: "--trusted-proxies") }
            } catch {
                throw ValidationError("\(error)")
            }
        }

        func gatewayConfiguration(logger: Logger) throws -> GatewayConfiguration {
            var c = GatewayConfiguration()
            c.auth = try authProvider(logger: logger)
            c.adminPort = adminPort
            c.adminHost = adminHost
            c.tlsPort = tlsPort
            c.tlsCertificates = tlsPairs
            c.http2 = !noHttp2
            c.http2MaxConcurrentStreams = http2MaxStreams
            c.host = host
            c.port = port
            c.threads = threads
            c.upstreamTimeout = .milliseconds(Int64(timeout * 1000))
            c.maxBodyBytes = maxBodySize
            c.maxHeaderBytes = maxHeaderSize
            c.headerReadTimeout = .milliseconds(Int64(headerTimeout * 1000))
            c.idleTimeout = .milliseconds(Int64(idleTimeout * 1000))
            c.tunnelIdleTimeout = .milliseconds(Int64(tunnelIdleTimeout * 1000))
            c.drainTimeout = .milliseconds(Int64(drainTimeout * 1000))
            c.accessLog = !noAccessLog
            c.loadBalancer = loadBalancer
            try c.setRateLimit(rateLimit.map { s throws(FieldError) in try RateLimit(parsing: s) }, key: rateLimitKey)
            c.versionHeaderName = versionHeader
            c.versionCookie = versionCookie
            c.trustedProxies = (try? trustedNetworks()) ?? []
            c.docsPath = noDocs ? nil : docsPath
            c.openapiPath = noDocs ? nil : openapiPath
            c.tracing = traceExporter(logger: logger)
            if let adminTokenFile {
                let source = TokenSource(file: adminTokenFile, environment: nil, logger: logger)
                c.adminToken = { source.current() }
            }
            return c
        }

        func healthConfiguration() -> HealthMonitor.Configuration {
            HealthMonitor.Configuration(
                active: .init(
                    interval: .milliseconds(Int64(healthInterval * 1000)), timeout: .milliseconds(Int64(healthTimeout * 1000)),
                    fallThreshold: healthFall, riseThreshold: healthRise
                ),
                activeChecks: !noHealthChecks,
                outlier: .init(
                    consecutiveFailures: outlierFailures, baseEjection: .milliseconds(Int64(ejectionTime * 1000)),
                    maxEjectedShare: maxEjectionPercent / 100
                ),
                panicRouting: panicRouting
            )
        }

        /// Where the gateway learns the catalog: a store read directly, a remote registry, or an
        /// embedded registry (whose API server joins the services). Kept out of `run()`: Swift 6.3.1
        /// crashes (signal 11, coroutine splitting) compiling it inline in an async function in release.
        func discovery(logger: Logger, sharing: LimitSharing?) throws -> (state: GatewayState, source: Discovery.Source, services: [any Service]) {
            if let registry, BackendURL.isStore(registry) {
                let backend = try BackendURL.make(registry, dataDirectory: nil, logger: logger)
                logger.notice("gateway reads the registry store \(backend.displayName) directly")
                return (GatewayState(source: backend.displayName, limitSharing: sharing, upstreamProtocol: upstreamProtocol), .backend(backend), [backend])
            }
            if let registry {
                let token = tokenFile.flatMap { TokenSource.read(file: $0) } ?? ProcessInfo.processInfo.environment["TAPPER_TOKEN"]
                return (GatewayState(source: registry, limitSharing: sharing, upstreamProtocol: upstreamProtocol), .remote(RegistryClient(baseURL: registry, token: token)), [])
            }
            let backend = try MemoryBackend(dataDirectory: dataDir, logger: logger)
            let token = TokenSource(file: tokenFile, environment: ProcessInfo.processInfo.environment["TAPPER_TOKEN"], logger: logger)
            let registryServer = RegistryServer(
                backend: backend, configuration: .init(host: "127.0.0.1", port: registryPort, token: { token.current() })
            )
            let api = registryServer.application(logger: logger) { port in
                logger.notice("embedded registry listening on http://127.0.0.1:\(port) (backend: \(backend.displayName))")
            }
            return (GatewayState(source: "embedded", limitSharing: sharing, upstreamProtocol: upstreamProtocol), .backend(backend), [api])
        }

        public func run() async throws {
            let logger = LogSetup.logger(label: "tapper.gateway", options: logging)
            let interval = Duration.milliseconds(Int64(discoveryInterval * 1000))
            let sharing = try limitSharing()
            let (state, source, registryServices) = try discovery(logger: logger, sharing: sharing)
            var services: [any Service] = registryServices
            let monitor = HealthMonitor(configuration: healthConfiguration())
            let configuration = try gatewayConfiguration(logger: logger)
            if configuration.auth != nil && adminPort == nil && adminTokenFile == nil {
                logger.warning("--auth protects the proxied routes only: /_tapper/* is open on the main listener; use --admin-token-file or --admin-port")
            }
            let gateway = Gateway(configuration: configuration, state: state, health: monitor, outcomes: monitor)
            services.append(Discovery(source: source, state: state, interval: interval, logger: logger))
            services.append(HealthChecker(monitor: monitor, state: state, logger: logger))
            if let exporter = configuration.tracing {
                // Before the server: the group stops services in reverse order, so the server's
                // last spans reach the exporter before it flushes and stops.
                services.append(exporter)
                logger.notice(
                    "exporting spans to \(exporter.settings.tracesURL) (OTLP/HTTP protobuf, sample rate \(exporter.settings.sampleRate), service.name \(exporter.settings.serviceName))"
                )
            }
            services.append(GatewayServer(gateway: gateway, logger: logger))
            if let sharing {
                logger.notice("rate limits are shared through \(sharing.store.displayName) (synced every \(sharing.interval), failing \(sharing.failure.rawValue))")
                services.append(SharedLimitSync(state: state, sharing: sharing, logger: logger))
            }
            if let invocation = ConfigInvocation.current.withLock({ $0 }), invocation.filePath != nil {
                services.append(Self.configReloader(invocation, gateway: gateway, logger: logger))
            }
            if configuration.openapiPath != nil { services.append(OpenAPICollector(gateway: gateway, logger: logger)) }
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            // The access log is written off the reactors: let its last lines out before exiting.
            do {
                try await group.run()
            } catch {
                await AccessLogWriter.standardOutput.drain()
                throw error
            }
            await AccessLogWriter.standardOutput.drain()
        }
    }
}

extension TapperCommand.Gateway.Serve {
    /// The settings a reloaded `--config` changes while the gateway serves.
    static let liveKeys: Set<String> = ["rate-limit", "rate-limit-key"]

    /// Re-reads `--config` when it changes and applies ``liveKeys`` to the running gateway.
    static func configReloader(_ invocation: ConfigInvocation, gateway: Gateway, logger: Logger) -> ConfigReloadService<Self> {
        ConfigReloadService(invocation: invocation, logger: logger) { command, changed in
            let applied = Set(changed.filter { liveKeys.contains($0) && invocation.overriddenBy($0) == nil })
            guard !applied.isEmpty else { return [] }
            do throws(FieldError) {
                let limit = try command.rateLimit.map { s throws(FieldError) in try RateLimit(parsing: s) }
                try gateway.updateRateLimit(limit, key: command.rateLimitKey)
                logger.notice("rate limit now \(limit.map { "\($0)" } ?? "off") per \(command.rateLimitKey)")
            } catch {
                logger.error("config not applied: --\(error.field): \(error.message)")
                return []
            }
            return applied
        }
    }

    /// `--auth` values.
    public enum AuthMode: String, ExpressibleByArgument, CaseIterable, Sendable {
        case none
        case apiKey = "api-key"
        case jwt
    }
}

extension UpstreamProtocol: ExpressibleByArgument {}
