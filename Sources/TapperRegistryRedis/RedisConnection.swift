import NIOCore
import NIOPosix
import TapperCore

/// Frames RESP values out of the byte stream with ``RESPDecoder``.
struct RESPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let (value, consumed) = try RESPDecoder.decode(buffer.readableBytesView) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: consumed)
        context.fireChannelRead(NIOAny(value))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Matches replies to commands in order (pipelining: many commands may be in flight), and hands
/// pub/sub messages to `onPush`.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = (bytes: [UInt8], promise: EventLoopPromise<RESPValue>)
    typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()
    private let onPush: (@Sendable (RESPValue) -> Void)?

    init(onPush: (@Sendable (RESPValue) -> Void)?) {
        self.onPush = onPush
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let (bytes, reply) = unwrapOutboundIn(data)
        pending.append(reply)
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        if let onPush, let kind = value.elements?.first?.string {
            // In subscribe mode the server sends messages unprompted; subscribe confirmations
            // answer our SUBSCRIBE commands.
            switch kind {
            case "message", "pmessage":
                onPush(value)
                return
            default:
                break
            }
        }
        guard let promise = pending.popFirst() else { return }
        promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        while let p = pending.popFirst() { p.fail(error) }
    }
}

@available(*, unavailable)
extension RedisCommandHandler: Sendable {}

/// One TCP connection to Redis: commands are pipelined, replies come back in order.
final class RedisConnection: Sendable {
    let channel: any Channel
    let commandTimeout: Duration

    private init(channel: any Channel, commandTimeout: Duration) {
        self.channel = channel
        self.commandTimeout = commandTimeout
    }

    /// Connects, then authenticates and selects the database.
    static func connect(
        _ configuration: RedisConfiguration,
        onPush: (@Sendable (RESPValue) -> Void)? = nil
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(configuration.connectTimeout.nanoseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RedisCommandHandler(onPush: onPush))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .get()
        let connection = RedisConnection(channel: channel, commandTimeout: configuration.commandTimeout)
        do {
            var handshake: [[String]] = []
            if let password = configuration.password {
                handshake.append(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if configuration.database != 0 { handshake.append(["SELECT", String(configuration.database)]) }
            for reply in try await connection.pipeline(handshake) {
                if case .error(let e) = reply {
                    throw RedisError.server(e.hasPrefix("WRONGPASS") || e.hasPrefix("NOAUTH") ? "authentication failed: \(e)" : e)
                }
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    var isActive: Bool { channel.isActive }

    func close() { channel.close(promise: nil) }

    /// Sends commands in one write and waits for every reply (in order). A timeout closes the
    /// connection: later replies could no longer be matched to their commands.
    func pipeline(_ commands: [[String]]) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let timeout = TimeAmount.nanoseconds(commandTimeout.nanoseconds)
        let channel = self.channel
        let timer = loop.scheduleTask(in: timeout) {
            for p in promises { p.fail(RedisError.timeout) }
            channel.close(promise: nil)
        }
        for (command, promise) in zip(commands, promises) {
            channel.write((bytes: RESPEncoder.command(command), promise: promise), promise: nil)
        }
        channel.flush()
        defer { timer.cancel() }
        var replies: [RESPValue] = []
        for p in promises { replies.append(try await p.futureResult.get()) }
        return replies
    }
}

/// Failures talking to Redis.
public enum RedisError: Error, CustomStringConvertible, Sendable {
    case connectionClosed
    case timeout
    /// An error reply (`-ERR …`).
    case server(String)
    /// Not connected; the next attempt is after a back-off.
    case backingOff(String)
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .connectionClosed: return "connection closed"
        case .timeout: return "no reply in time"
        case .server(let e): return "server error: \(e)"
        case .backingOff(let last): return "not connected (\(last)); reconnecting with back-off"
        case .unexpectedReply(let r): return "unexpected reply \(r)"
        }
    }
}
