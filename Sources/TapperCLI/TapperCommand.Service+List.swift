import ArgumentParser
import Foundation
import TapperClient
import TapperCore

extension TapperCommand.Service {
    /// `tapper service list`
    public struct List: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List registered services and their instances.",
            discussion: "--json prints the registry's catalog (GET /v1/catalog) unchanged: {index, services: [{name, instances: [...]}]}."
        )

        @Flag(help: "Print the catalog as JSON.")
        public var json = false

        @OptionGroup public var registryOptions: RegistryOptions

        public init() {}

        public func run() async throws {
            let snapshot = try await registryOptions.client().catalog()
            if json {
                try JSONOutput.print(snapshot)
                return
            }
            if snapshot.services.isEmpty {
                print("no services registered")
                return
            }
            var rows = [["SERVICE", "VERSION", "INSTANCE", "URL", "ROUTES", "HEARTBEAT", "EXPIRES"]]
            for s in snapshot.services {
                for i in s.instances {
                    rows.append([
                        s.name, i.registration.version, i.instanceID, i.registration.url, String(i.registration.routes.count),
                        i.heartbeatAgeSeconds.map { Table.age($0) + " ago" } ?? "-",
                        i.expiresInSeconds.map { "in " + Table.age($0) } ?? "-",
                    ])
                }
            }
            print(Table.render(rows), terminator: "")
        }
    }
}
