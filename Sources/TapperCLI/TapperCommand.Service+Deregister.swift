import ArgumentParser
import TapperClient

extension TapperCommand.Service {
    /// `tapper service deregister NAME ID`
    public struct Deregister: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "deregister",
            abstract: "Remove a service instance from the registry."
        )

        @Argument(help: "Service name.", completion: LiveCompletions.serviceNames)
        public var name: String

        @Argument(help: "Instance id.", completion: LiveCompletions.instanceIDs)
        public var instanceId: String

        @OptionGroup public var registryOptions: RegistryOptions

        public init() {}

        public func run() async throws {
            let client = registryOptions.client()
            guard try await client.deregister(service: name, instanceID: instanceId) else {
                throw CLIError("instance '\(instanceId)' of service '\(name)' is not registered at \(client.authority); see 'tapper service list'")
            }
            print("deregistered \(name)/\(instanceId)")
        }
    }
}
