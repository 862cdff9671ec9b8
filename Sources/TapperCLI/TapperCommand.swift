import ArgumentParser

/// The root `tapper` command.
public struct TapperCommand: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "tapper",
        abstract: "Service discovery and API gateway for HTTP microservices.",
        discussion: """
            Services register with a registry; the gateway watches it and routes each request to a \
            healthy instance of the service that owns its path.

            Start with 'tapper registry serve', then register services with 'tapper service register'. \
            Bare 'tapper' on a terminal opens the interactive shell ('tapper shell').
            """,
        version: TapperCommand.version,
        subcommands: [Registry.self, Gateway.self, Service.self, Status.self, Route.self, Shell.self]
    )

    public init() {}
}
