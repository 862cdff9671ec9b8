import ArgumentParser

extension TapperCommand {
    /// `tapper route …`
    public struct Route: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "route",
            abstract: "Inspect routing.",
            subcommands: [Test.self]
        )

        public init() {}
    }
}
