import ArgumentParser

extension TapperCommand {
    /// `tapper gateway …`
    public struct Gateway: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "gateway",
            abstract: "Run the API gateway.",
            subcommands: [Serve.self]
        )

        public init() {}
    }
}
