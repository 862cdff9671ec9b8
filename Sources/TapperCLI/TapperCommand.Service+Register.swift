import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import TapperClient
import TapperCore

extension TapperCommand.Service {
    /// `tapper service register`
    public struct Register: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "register",
            abstract: "Register a service instance with the registry.",
            discussion: """
                Routes are FastAPI/Starlette path templates, optionally preceded by methods: \
                --route 'GET /users/{user_id}' --route 'GET,POST /users/' --route '/files/{rest:path}' \
                (no method: any method).

                Without --keep-alive the instance expires after its TTL unless something heartbeats for it. \
                With --keep-alive this command stays in the foreground, heartbeats every TTL/3, registers \
                again if the registry forgot the instance, and deregisters on Ctrl-C or SIGTERM.
                """
        )

        @Argument(help: "Service name (a DNS label: lowercase letters, digits, '-').", completion: LiveCompletions.serviceNames)
        public var name: String

        @Option(help: ArgumentHelp("Where the instance is reachable, e.g. http://127.0.0.1:8002.", valueName: "url"))
        public var url: String

        @Option(help: ArgumentHelp("Instance id (default: derived from the URL's host and port).", valueName: "id"))
        public var instanceId: String?

        @Option(name: .customLong("version"), help: "Service version.")
        public var serviceVersion: String = "0.0.0"

        @Option(help: "Human-readable description.")
        public var description: String = ""

        @Option(help: ArgumentHelp("Path prefix prepended to every route, e.g. /api.", valueName: "path"))
        public var prefix: String = ""

        @Option(help: ArgumentHelp("Path the gateway probes for health.", valueName: "path"))
        public var healthEndpoint: String = "/health"

        @Option(name: .customLong("tag"), help: ArgumentHelp("A tag (repeatable).", valueName: "tag"))
        public var tags: [String] = []

        @Option(name: .customLong("route"), help: ArgumentHelp("A route, 'METHODS /path/{param}' (repeatable).", valueName: "route"))
        public var routes: [String] = []

        @Option(
            name: .customLong("public-route"),
            help: ArgumentHelp("A route the gateway serves without authentication, same form as --route (repeatable).", valueName: "route")
        )
        public var publicRoutes: [String] = []

        @Option(help: ArgumentHelp("Seconds the registration lives without a heartbeat.", valueName: "seconds"))
        public var ttl: Double = ServiceRegistration.defaultTTLSeconds

        @Option(help: "Relative weight for the weighted balancer (1-1000).")
        public var weight: Int = 1

        @Option(
            help: ArgumentHelp(
                "Percentage of the service's traffic for this instance's version (0-100), e.g. 10 for a canary; versions without one share the rest by instance count.",
                valueName: "percent"))
        public var trafficWeight: Double?

        @Option(
            help: ArgumentHelp(
                "The service's rate limit per client (the gateway's --rate-limit-key), e.g. 100/s; one route's own: a third word in --route, 'GET /search 10/s'.",
                valueName: "N/s|N/m|N/h"))
        public var rateLimit: String?

        @Option(
            name: .customLong("protocol"),
            help: ArgumentHelp(
                "How the gateway speaks to the instance: http1 or h2c (HTTP/2 with prior knowledge, e.g. a gRPC server); default: the gateway's --upstream-protocol.",
                valueName: "protocol"))
        public var upstreamProtocol: UpstreamProtocol?

        @Option(name: .customLong("meta"), help: ArgumentHelp("Metadata as key=value (repeatable).", valueName: "key=value"))
        public var metadata: [String] = []

        @Flag(help: "Read the routes from the service's OpenAPI 3.x document (FastAPI's /openapi.json).")
        public var openapi = false

        @Option(
            help: ArgumentHelp(
                "Where the instance serves its OpenAPI document, relative to --url (default with --openapi: /openapi.json); sent as openapi_path, so the gateway merges it into its /openapi.json.",
                valueName: "path"))
        public var openapiPath: String?

        @Flag(help: "Stay in the foreground: heartbeat, re-register when needed, deregister on exit.")
        public var keepAlive = false

        @Flag(help: "Print the stored record as JSON.")
        public var json = false

        @OptionGroup public var registryOptions: RegistryOptions
        @OptionGroup public var logging: LoggingOptions

        public init() {}

        /// The registration the flags describe, validated.
        public func registration() throws -> (instanceID: String, registration: ServiceRegistration) {
            do {
                try Names.validateServiceName(name, field: "NAME")
                let parsedURL = try ServiceURL(parsing: url, field: "--url")
                let id = instanceId ?? Names.defaultInstanceID(for: parsedURL)
                try Names.validateInstanceID(id, field: "--instance-id")
                var specs: [RouteSpec] = []
                for r in routes { specs.append(try RouteSpec(parsingCLI: r)) }
                for r in publicRoutes {
                    var spec = try RouteSpec(parsingCLI: r)
                    spec.isPublic = true
                    specs.append(spec)
                }
                var meta: [String: String] = [:]
                for m in metadata {
                    guard let eq = m.firstIndex(of: "=") else { throw FieldError(field: "--meta", message: "'\(m)' must look like key=value") }
                    meta[String(m[..<eq])] = String(m[m.index(after: eq)...])
                }
                var reg = ServiceRegistration(
                    url: url, version: serviceVersion, description: description, prefix: prefix, healthEndpoint: healthEndpoint,
                    tags: tags, routes: specs, ttlSeconds: ttl, weight: weight, metadata: meta,
                    trafficWeight: trafficWeight,
                    rateLimit: try rateLimit.map { text throws(FieldError) in try RateLimit(parsing: text, field: "rate_limit") },
                    openapiPath: openapi ? (openapiPath ?? "/openapi.json") : openapiPath,
                    upstreamProtocol: upstreamProtocol
                )
                try reg.validate()
                return (id, reg)
            } catch let error as FieldError {
                throw ValidationError(Self.flagMessage(error))
            }
        }

        static func flagMessage(_ e: FieldError) -> String {
            let map = ["ttl_seconds": "--ttl", "health_endpoint": "--health-endpoint", "version": "--version", "url": "--url", "prefix": "--prefix", "traffic_weight": "--traffic-weight", "rate_limit": "--rate-limit", "weight": "--weight", "openapi_path": "--openapi-path"]
            if let flag = map[e.field] { return "\(flag): \(e.message)" }
            if e.field.hasPrefix("routes[") || e.field.hasPrefix("route") { return "--route: \(e.message)" }
            if e.field.hasPrefix("tags[") { return "--tag: \(e.message)" }
            return e.description
        }

        public func validate() throws { _ = try registration() }

        public func run() async throws {
            let (id, flagged) = try registration()
            var reg = flagged
            if openapi {
                let found = try await OpenAPIRoutes.fetch(serviceURL: url, path: openapiPath ?? "/openapi.json", skipping: [healthEndpoint])
                var merged = reg
                merged.routes = reg.routes + found.filter { spec in !reg.routes.contains { $0.path == spec.path } }
                do {
                    try merged.validate()
                } catch {
                    throw CLIError("the OpenAPI document of \(url) has a route the registry cannot take: \(error)")
                }
                reg = merged
            }
            let registration = reg
            let client = registryOptions.client()
            let name = self.name
            let json = self.json
            let report: @Sendable (InstanceRecord, Bool) throws -> Void = { record, created in
                if json {
                    try JSONOutput.print(record)
                } else {
                    let n = registration.routes.count
                    print("\(created ? "registered" : "updated") \(name)/\(id) at \(registration.url) with \(n) route\(n == 1 ? "" : "s") (registry \(client.authority), index \(record.modifyIndex))")
                }
            }
            guard keepAlive else {
                let (record, created) = try await client.register(service: name, instanceID: id, registration: registration)
                try report(record, created)
                return
            }
            // The first registration happens inside the service group, once SIGTERM and SIGINT
            // are handled, so a signal right after "registered" always deregisters.
            let logger = LogSetup.logger(label: "tapper.service", options: logging)
            let keeper = KeepAlive(client: client, service: name, instanceID: id, registration: registration, logger: logger, onRegistered: report)
            let group = ServiceGroup(configuration: .init(services: [keeper], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
        }
    }
}
