import Foundation
import NIOCore
import NIOPosix

// Usage: RawProxy LISTEN_PORT UPSTREAM_PORT...
let args = CommandLine.arguments
let listenPort = Int(args[1])!
let upstreamPorts = args.dropFirst(2).map { Int($0)! }
let debug = ProcessInfo.processInfo.environment["DEBUG"] != nil

/// Finds "\r\n\r\n" in the readable bytes; returns the index after it.
func headEnd(_ buf: ByteBuffer) -> Int? {
    buf.withUnsafeReadableBytes { raw -> Int? in
        let n = raw.count
        guard n >= 4 else { return nil }
        var i = 3
        while i < n {
            if raw[i] == 10 && raw[i - 1] == 13 && raw[i - 2] == 10 && raw[i - 3] == 13 { return i + 1 }
            i += 1
        }
        return nil
    }
}

/// Content-Length from a raw head (case-insensitive name match), or 0.
func contentLength(_ buf: ByteBuffer, headLength: Int) -> Int {
    buf.withUnsafeReadableBytes { raw -> Int in
        let needle = Array("content-length:".utf8)
        var i = 0
        while i + needle.count < headLength {
            var j = 0
            while j < needle.count && (raw[i + j] | 0x20) == needle[j] { j += 1 }
            if j == needle.count {
                var k = i + j
                while raw[k] == 32 { k += 1 }
                var v = 0
                while raw[k] >= 48 && raw[k] <= 57 { v = v * 10 + Int(raw[k] - 48); k += 1 }
                return v
            }
            i += 1
        }
        return 0
    }
}

final class UpstreamRaw: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var context: ChannelHandlerContext!
    weak var client: ClientRaw?
    var remaining = -1  // body bytes left of the current response; -1 = reading a head
    var buffer: ByteBuffer?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buf = unwrapInboundIn(data)
        if debug { print("upstream read \(buf.readableBytes)") }
        if buffer != nil { buffer!.writeBuffer(&buf); buf = buffer!; buffer = nil }
        while buf.readableBytes > 0 {
            if remaining < 0 {
                guard let end = headEnd(buf) else { buffer = buf; return }
                remaining = contentLength(buf, headLength: end)
                let head = buf.readSlice(length: end)!
                client?.write(head)
            } else {
                let n = min(remaining, buf.readableBytes)
                let part = buf.readSlice(length: n)!
                remaining -= n
                client?.write(part)
            }
            if remaining == 0 {
                remaining = -1
                client?.responseDone(self)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { client?.flush() }
}

final class ClientRaw: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var context: ChannelHandlerContext!
    var upstream: UpstreamRaw?
    var pending: ByteBuffer?
    nonisolated(unsafe) static var next = 0

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(_ b: ByteBuffer) { context.write(wrapOutboundOut(b), promise: nil) }
    func flush() { context.flush() }

    func responseDone(_ u: UpstreamRaw) {
        context.flush()
        u.client = nil
        Pool.idle.append(u)
        upstream = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buf = unwrapInboundIn(data)
        if debug { print("client read \(buf.readableBytes)") }
        // GET-only experiment: each read is one request head.
        if let u = Pool.idle.popLast() {
            u.client = self
            upstream = u
            u.context.writeAndFlush(NIOAny(buf), promise: nil)
        } else {
            pending = buf
            ClientRaw.next += 1
            let port = upstreamPorts[ClientRaw.next % upstreamPorts.count]
            ClientBootstrap(group: context.eventLoop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(UpstreamRaw()) } }
                .connect(host: "127.0.0.1", port: port)
                .assumeIsolated()
                .whenComplete { result in
                    if debug { print("connect \(result)") }
                    guard case .success(let ch) = result else { return }
                    let u = try! ch.pipeline.syncOperations.handler(type: UpstreamRaw.self)
                    u.client = self
                    self.upstream = u
                    u.context.writeAndFlush(NIOAny(self.pending!), promise: nil)
                    self.pending = nil
                }
        }
    }
}

enum Pool {
    nonisolated(unsafe) static var idle: [UpstreamRaw] = []
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ClientRaw()) } }
    .bind(host: "127.0.0.1", port: listenPort).wait()
print("raw proxy on \(listenPort)")
try server.closeFuture.wait()
