import ArgumentParser

extension TapperCommand {
    /// `tapper service …`
    public struct Service: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "service",
            abstract: "Register, deregister and list services.",
            subcommands: [Register.self, Deregister.self, List.self]
        )

        public init() {}
    }
}
