/// A small Redis client: one pipelined connection, opened on first use and re-opened with
/// exponential back-off after it fails (while backing off, commands fail at once instead of
/// queueing, so callers can answer 503 quickly).
public actor RedisClient {
    public let configuration: RedisConfiguration
    private var connection: RedisConnection?
    private var connecting: Task<RedisConnection, any Error>?
    private var failures = 0
    private var retryAt: ContinuousClock.Instant?
    private var lastError = ""

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    /// The delay before reconnect attempt `failures` (1, 2, …): 50 ms doubling to 2 s.
    static func backoff(failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        return min(.milliseconds(50) * (1 << min(failures - 1, 10)), .seconds(2))
    }

    func current() async throws -> RedisConnection {
        if let connection, connection.isActive { return connection }
        connection = nil
        if let connecting { return try await connecting.value }
        if let retryAt, ContinuousClock.now < retryAt { throw RedisError.backingOff(lastError) }
        let configuration = self.configuration
        let task = Task { try await RedisConnection.connect(configuration) }
        connecting = task
        defer { connecting = nil }
        do {
            let c = try await task.value
            connection = c
            failures = 0
            retryAt = nil
            return c
        } catch {
            failures += 1
            lastError = "\(error)"
            retryAt = .now + Self.backoff(failures: failures)
            throw error
        }
    }

    /// Sends commands in one round trip; replies are in order (error replies are values here).
    public func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        let c = try await current()
        return try await c.pipeline(commands)
    }

    /// Sends one command; an error reply is thrown as ``RedisError/server(_:)``.
    @discardableResult
    public func send(_ command: String...) async throws -> RESPValue {
        try await send(command)
    }

    @discardableResult
    public func send(_ command: [String]) async throws -> RESPValue {
        let reply = try await pipeline([command])[0]
        if case .error(let e) = reply { throw RedisError.server(e) }
        return reply
    }

    /// Closes the connection.
    public func close() {
        connection?.close()
        connection = nil
    }
}
