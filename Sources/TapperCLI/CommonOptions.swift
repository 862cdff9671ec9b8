import ArgumentParser
import Foundation
import TapperClient

/// `--registry` and `--token`, shared by every command that talks to the registry.
public struct RegistryOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Registry URL (default: $TAPPER_REGISTRY_URL or http://127.0.0.1:8001).", valueName: "url"))
    public var registry: String?

    @Option(name: .long, help: ArgumentHelp("Bearer token for registry writes (default: $TAPPER_TOKEN).", valueName: "token"))
    public var token: String?

    public init() {}

    /// The registry URL from the flag, then the environment (``environmentURL``).
    public var registryURL: String { registry ?? Self.environmentURL }

    /// `TAPPER_REGISTRY_URL` (or the original's `TAPER_REGISTRY_URL`), then the default.
    static var environmentURL: String {
        let env = ProcessInfo.processInfo.environment
        return env["TAPPER_REGISTRY_URL"] ?? env["TAPER_REGISTRY_URL"] ?? RegistryClient.defaultURL
    }

    /// `TAPPER_GATEWAY_URL`, then the default: the gateway `status`, `route test` and the shell ask.
    static var environmentGatewayURL: String {
        ProcessInfo.processInfo.environment["TAPPER_GATEWAY_URL"] ?? GatewayClient.defaultURL
    }

    public var resolvedToken: String? {
        token ?? ProcessInfo.processInfo.environment["TAPPER_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func client() -> RegistryClient {
        RegistryClient(baseURL: registryURL, token: resolvedToken)
    }

    public func validate() throws {
        let url = registryURL.lowercased()
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw ValidationError("--registry must be an http:// or https:// URL, got '\(registryURL)'")
        }
    }
}

/// `--log-level`.
public struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    public var logLevel: String = "info"

    public init() {}

    public func validate() throws {
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(logLevel) else { throw ValidationError("--log-level must be one of \(levels.joined(separator: ", "))") }
    }
}
