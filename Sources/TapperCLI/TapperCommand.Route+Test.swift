import ArgumentParser
import Foundation
import TapperClient
import TapperCore

extension TapperCommand.Route {
    /// `tapper route test METHOD PATH`
    public struct Test: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Show which service and instance a request would reach, and why.",
            discussion: """
                Resolves METHOD PATH against the live route table (built from the registry's catalog with the \
                gateway's own code), without sending anything: the matched template, its service and version, \
                the path parameters, the instances (healthy ones per the gateway when it answers) and why this \
                route won over the other matching templates. 404 and 405 say what is registered nearby. \
                --send sends the request through the gateway and shows what answered.

                Exit status: 0 a route matched (with --send: the gateway answered < 400); 1 no route (404/405), \
                or the sent request got a 4xx/5xx; 2 registry or gateway unreachable.
                """
        )

        @Argument(help: "HTTP method, e.g. GET.")
        public var method: String?

        @Argument(help: "Request path, with an optional query string.")
        public var path: String?

        @Option(help: ArgumentHelp("Check a YAML table of cases (method, path, service, params, status) instead.", valueName: "routes.yaml"))
        public var file: String?

        @Flag(help: "With --file: print only the failing cases.")
        public var onlyFailures = false

        @Option(help: ArgumentHelp("With --file: fail when fewer than PCT percent of the registered routes are exercised.", valueName: "pct"))
        public var failUnder: Double?

        @Flag(help: "Send the request through the gateway.")
        public var send = false

        @Option(name: .customShort("H"), help: ArgumentHelp("A request header for --send, 'Name: value' (repeatable).", valueName: "header"))
        public var headers: [String] = []

        @Option(name: [.customShort("d"), .customLong("data")], help: ArgumentHelp("Request body for --send; @FILE reads a file.", valueName: "data"))
        public var data: String?

        @Flag(help: "Print JSON.")
        public var json = false

        @OptionGroup public var gatewayOptions: GatewayOptions
        @OptionGroup public var registryOptions: RegistryOptions

        public init() {}

        public func validate() throws {
            if file != nil {
                guard method == nil && path == nil && !send else { throw ValidationError("--file takes no METHOD PATH and no --send") }
                return
            }
            guard let path, method != nil else { throw ValidationError("give METHOD PATH, or --file routes.yaml") }
            guard path.hasPrefix("/") else { throw ValidationError("PATH must start with '/', got '\(path)'") }
            for h in headers where !h.contains(":") { throw ValidationError("-H '\(h)' must look like 'Name: value'") }
        }

        var gatewayURL: String { gatewayOptions.url }

        /// What this command prints (the same value as the gateway's `/_tapper/explain`).
        typealias Report = RouteReport

        public func run() async throws {
            if let file {
                try await RouteCheck(file: file, onlyFailures: onlyFailures, failUnder: failUnder, json: json, registry: registryOptions).run()
                return
            }
            let method = (self.method ?? "").uppercased()
            let path = self.path ?? "/"
            let catalog: CatalogSnapshot
            do {
                catalog = try await registryOptions.client().catalog()
            } catch {
                throw CLIError("\(error)")
            }
            let gatewayStatus = try? await gatewayOptions.status().get()
            let table = RouteTable(snapshot: catalog)
            let states = gatewayStatus.map { status in
                Dictionary(
                    status.services.map { s in (s.name, Dictionary(s.instances.map { ($0.id, $0.state) }, uniquingKeysWith: { a, _ in a })) },
                    uniquingKeysWith: { a, _ in a })
            }
            var report = RouteReport(method: method, path: path, catalog: catalog, table: table, states: states)
            let matched = report.matched
            var exitCode: Int32 = matched ? 0 : 1
            if send {
                var body: Data? = nil
                if let data {
                    if data.hasPrefix("@") {
                        guard let d = FileManager.default.contents(atPath: String(data.dropFirst())) else { throw CLIError("cannot read \(data.dropFirst())") }
                        body = d
                    } else {
                        body = Data(data.utf8)
                    }
                }
                let pairs = headers.map { h -> (String, String) in
                    let i = h.firstIndex(of: ":")!
                    return (String(h[..<i]).trimmingCharacters(in: .whitespaces), String(h[h.index(after: i)...]).trimmingCharacters(in: .whitespaces))
                }
                let started = ContinuousClock.now
                let reply = try await GatewayClient(baseURL: gatewayURL).send(method: method, path: path, headers: pairs, body: body)
                let elapsed = ContinuousClock.now - started
                let ms = elapsed.inSeconds * 1000
                let instance = reply.headers.first { $0.0.lowercased() == "x-tapper-instance" }?.1
                report.sent = RouteReport.Sent(status: reply.status, milliseconds: (ms * 10).rounded() / 10, instance: instance, body: String(decoding: reply.body, as: UTF8.self))
                exitCode = reply.status < 400 ? 0 : 1
            }
            if json {
                try JSONOutput.print(report)
            } else {
                print(render(report), terminator: "")
            }
            if exitCode != 0 { throw ExitCode(exitCode) }
        }

        func render(_ r: Report) -> String {
            let style = Style.forStandardOutput()
            var out = ""
            switch r.result {
            case "matched":
                out += "\(r.method) \(r.path) → \(style.bold(r.service ?? "")) \(r.version ?? "") via \(r.template ?? "")\n"
                if r.public == true { out += "  public: served without credentials when the gateway runs with --auth\n" }
                if r.websocket == true { out += "  websocket: a WebSocket route; the gateway tunnels its upgrade to the instance\n" }
                if !r.parameters.isEmpty {
                    out += "  parameters: " + r.parameters.keys.sorted().map { "\($0)=\(r.parameters[$0]!)" }.joined(separator: " ") + "\n"
                }
                let routable = r.routableInstances
                if let next = routable.first {
                    out += "  instance: \(next.id) (\(next.url)) — balancer picks among \(routable.count) of \(r.instances.count) instances\n"
                } else {
                    out += style.red("  no healthy instance: the gateway would answer 503") + "\n"
                }
                for i in r.instances { out += "    \(i.id)  \(i.url)  \(i.state)\n" }
                if let traffic = r.traffic {
                    out += "  traffic split: " + traffic.map { share in
                        let percent = share.percent.rounded() == share.percent ? String(Int(share.percent)) : String(share.percent)
                        let n = "\(share.instances) instance\(share.instances == 1 ? "" : "s")"
                        return "\(share.version) \(percent)% (\(n)\(share.weighted ? ", traffic_weight" : ""))"
                    }.joined(separator: ", ") + "\n"
                }
                if r.candidates.count > 1 {
                    out += "  why: most specific wins (literal > typed parameter > {name} > catch-all, then more segments)\n"
                    for c in r.candidates.dropFirst() { out += "    \(c.reason ?? "") [\(c.service)]\n" }
                } else {
                    out += "  why: the only template matching this path\n"
                }
            case "method_not_allowed":
                out += "\(r.method) \(r.path) → 405: the path matches \(r.candidates.map(\.template).joined(separator: ", ")) but not for \(r.method); allowed: \(r.allowed.joined(separator: ", "))\n"
            default:
                out += "\(r.method) \(r.path) → 404: no route matches"
                out += r.nearby.isEmpty ? "; nothing registered nearby\n" : "; nearby: \(r.nearby.joined(separator: ", "))\n"
            }
            if let s = r.sent {
                var body = s.body
                if isatty(STDOUT_FILENO) == 1 && body.count > 2000 { body = String(body.prefix(2000)) + "… (\(s.body.count) bytes)" }
                out += "sent: \(s.status) in \(s.milliseconds) ms\(s.instance.map { " from \($0)" } ?? "")\n\(body)\n"
            }
            return out
        }
    }
}
