import ArgumentParser

extension TapperCommand {
    /// `tapper registry …`
    public struct Registry: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "registry",
            abstract: "Run the service registry.",
            subcommands: [Serve.self]
        )

        public init() {}
    }
}
