import ArgumentParser
import Foundation
import TapperClient
import TapperCore

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

/// `--gateway` and `--admin-token`, shared by the commands that read the gateway's view.
public struct GatewayOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Gateway URL, or its --admin-port listener (default: $TAPPER_GATEWAY_URL or http://127.0.0.1:8000).", valueName: "url"))
    public var gateway: String?

    @Option(help: ArgumentHelp("Bearer token for the gateway's /_tapper/* when it runs with --admin-token-file (default: $TAPPER_ADMIN_TOKEN).", valueName: "token"))
    public var adminToken: String?

    public init() {}

    public var url: String { gateway ?? RegistryOptions.environmentGatewayURL }

    public var resolvedToken: String? {
        adminToken ?? ProcessInfo.processInfo.environment["TAPPER_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func client(timeout: Duration = .seconds(5)) -> GatewayClient {
        GatewayClient(baseURL: url, token: resolvedToken, timeout: timeout)
    }

    /// The gateway's status report, or why it could not be had, as a sentence for the operator.
    func status() async -> Result<StatusReport, GatewayViewProblem> {
        let client = client(timeout: .seconds(2))
        do {
            return .success(try await client.status())
        } catch let error as TapperClientError {
            switch error.kind {
            case .api(status: 401, _, _), .api(status: 403, _, _):
                return .failure(.init("the gateway at \(client.authority) refused /_tapper/status: pass --admin-token or set TAPPER_ADMIN_TOKEN"))
            case .api(status: 404, _, _):
                return .failure(.init("the gateway at \(client.authority) does not serve /_tapper/status here: with --admin-port, point --gateway at that port"))
            default:
                return .failure(.init("no gateway answered at \(client.authority)"))
            }
        } catch {
            return .failure(.init("no gateway answered at \(client.authority)"))
        }
    }
}

/// Why the gateway's view is missing (shown next to the registry's view).
struct GatewayViewProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
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
