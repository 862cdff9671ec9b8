import ArgumentParser
import Foundation
import TapperClient
import TapperCore

extension TapperCommand {
    /// `tapper status`
    public struct Status: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show services, instances and their health.",
            discussion: """
                Asks the gateway (--gateway, $TAPPER_GATEWAY_URL, default http://127.0.0.1:8000) for health as it \
                routes; when no gateway answers it shows the registry's view instead and says so.

                Exit status: 0 every service has a healthy instance and none is unhealthy or ejected; \
                1 degraded (the reasons are printed: a service without a healthy instance, an unhealthy or \
                ejected instance, or a gateway that lost its registry); 2 neither gateway nor registry reachable.

                --json prints the StatusReport schema: {"view": "gateway"|"registry", "gateway": {...}|null, \
                "services": [{"name", "versions", "healthy", "total", "routes", "instances": [{"id", "url", \
                "version", "state", "weight", "last_heartbeat_age_seconds", "expires_in_seconds"}]}], \
                "status": "ok"|"degraded", "problems": [...]}.
                """
        )

        @Option(help: ArgumentHelp("Only this service.", valueName: "name"), completion: LiveCompletions.serviceNames)
        public var service: String?

        @Flag(help: "Print JSON for scripts.")
        public var json = false

        @Flag(help: "Print nothing; only the exit status tells.")
        public var quiet = false

        @Flag(help: "Redraw whenever the catalog changes (blocking query), until Ctrl-C.")
        public var watch = false

        @OptionGroup public var gatewayOptions: GatewayOptions
        @OptionGroup public var registryOptions: RegistryOptions

        public init() {}

        var gatewayURL: String { gatewayOptions.url }

        struct Output: Encodable {
            var report: StatusReport
            var status: String
            var problems: [String]

            func encode(to encoder: any Encoder) throws {
                try report.encode(to: encoder)
                var c = encoder.container(keyedBy: Keys.self)
                try c.encode(status, forKey: .status)
                try c.encode(problems, forKey: .problems)
            }
            enum Keys: String, CodingKey { case status, problems }
        }

        /// Fetches the best available view: the gateway's, else the registry's (with why the
        /// gateway's is missing).
        func fetch() async -> (report: StatusReport, gatewayProblem: String?)? {
            let gatewayProblem: String
            switch await gatewayOptions.status() {
            case .success(let report): return (report, nil)
            case .failure(let problem): gatewayProblem = problem.message
            }
            if let catalog = try? await registryOptions.client().catalog() { return (StatusReport(registryView: catalog), gatewayProblem) }
            return nil
        }

        public func run() async throws {
            if watch {
                var index: UInt64? = nil
                while !Task.isCancelled {
                    let code = try await once(clear: true)
                    _ = code
                    // Wait for a catalog change (or 5 s, so health changes show too).
                    let client = registryOptions.client()
                    if let i = index {
                        index = (try? await client.catalog(index: i, wait: .seconds(5)))?.index ?? i
                    } else {
                        index = (try? await client.catalog())?.index ?? 0
                    }
                }
                return
            }
            let code = try await once(clear: false)
            if code != 0 { throw ExitCode(code) }
        }

        func once(clear: Bool) async throws -> Int32 {
            guard let (fetched, gatewayProblem) = await fetch() else {
                if !quiet {
                    let message = "nothing reachable: no gateway at \(GatewayClient(baseURL: gatewayURL).authority) and no registry at \(registryOptions.client().authority); start 'tapper gateway serve'"
                    if json {
                        print(#"{"status": "unreachable", "problems": ["\#(message)"], "services": [], "view": null, "gateway": null}"#)
                    } else {
                        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
                    }
                }
                return 2
            }
            var report = fetched
            if let service { report.services = report.services.filter { $0.name == service } }
            let problems = report.problems
            let code: Int32 = problems.isEmpty ? 0 : 1
            if quiet { return code }
            if json {
                try JSONOutput.print(Output(report: report, status: problems.isEmpty ? "ok" : "degraded", problems: problems))
                return code
            }
            let style = Style.forStandardOutput()
            if clear && style.color { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(render(report, problems: problems, gatewayProblem: gatewayProblem, style: style), terminator: "")
            return code
        }

        func render(_ report: StatusReport, problems: [String], gatewayProblem: String? = nil, style: Style) -> String {
            var out = ""
            if let g = report.gateway {
                out += "gateway \(GatewayClient(baseURL: gatewayURL).authority): table #\(g.tableIndex), \(Table.age(g.tableAgeSeconds)) old, registry \(g.registry.source) "
                out += g.registry.reachable ? style.green("reachable") : style.red("unreachable")
                out += ", \(g.requestsInFlight) in flight\n"
                if let h = g.http2, h.streams + h.upstreamStreams + h.connections + h.upstreamSessions > 0 {
                    out += "http2: \(h.connections) client connection\(h.connections == 1 ? "" : "s") open, \(h.streams) streams, \(h.clientResets) client resets"
                    if h.rapidResetGoaways > 0 { out += ", " + style.yellow("\(h.rapidResetGoaways) rapid-reset GOAWAY\(h.rapidResetGoaways == 1 ? "" : "s")") }
                    out += "; h2c upstreams: \(h.upstreamSessions) open, \(h.upstreamStreams) streams\n"
                }
            } else {
                let why = gatewayProblem ?? "no gateway answered at \(GatewayClient(baseURL: gatewayURL).authority)"
                out += style.yellow("\(why); showing the registry's view (no health checks)") + "\n"
            }
            if report.services.isEmpty {
                out += "no services registered\n"
            } else {
                var rows = [["SERVICE", "VERSION", "HEALTHY", "ROUTES", "INSTANCE", "URL", "STATE", "HEARTBEAT"]]
                for s in report.services {
                    for (n, i) in s.instances.enumerated() {
                        rows.append([
                            n == 0 ? s.name : "", n == 0 ? s.versions.joined(separator: ",") : "", n == 0 ? "\(s.healthy)/\(s.total)" : "",
                            n == 0 ? String(s.routes) : "", i.id, i.url, i.state, i.heartbeatAgeSeconds.map { Table.age($0) + " ago" } ?? "-",
                        ])
                    }
                }
                out += Table.render(rows, color: { column, value in
                    guard column == 6 else { return value }
                    switch value.trimmingCharacters(in: .whitespaces) {
                    case "healthy", "registered": return style.green(value)
                    case "expiring": return style.yellow(value)
                    default: return style.red(value)
                    }
                })
            }
            if problems.isEmpty {
                out += style.green("ok") + "\n"
            } else {
                out += style.red("degraded") + ":\n" + problems.map { "  - \($0)\n" }.joined()
            }
            return out
        }
    }
}
