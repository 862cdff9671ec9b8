#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CEpoll
import NIOCore

/// A socket address as the kernel takes it.
struct SocketAddress4or6: Sendable {
    var storage = sockaddr_storage()
    var length: socklen_t = 0

    var family: Int32 { Int32(storage.ss_family) }

    /// The numeric host, e.g. `127.0.0.1` or `::1`.
    var ipString: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var s = storage
        let ok: Bool = withUnsafePointer(to: &s) { p in
            if storage.ss_family == sa_family_t(AF_INET) {
                return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    var addr = a.pointee.sin_addr
                    return inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count)) != nil
                }
            } else if storage.ss_family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    var addr = a.pointee.sin6_addr
                    return inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count)) != nil
                }
            }
            return false
        }
        guard ok else { return "" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    var port: Int {
        var s = storage
        return withUnsafePointer(to: &s) { p in
            if storage.ss_family == sa_family_t(AF_INET6) {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// The addresses `host` resolves to for TCP on `port` (numeric hosts without a lookup).
    static func resolve(host: String, port: Int, passive: Bool = false) throws(SocketError) -> [SocketAddress4or6] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &result)
        guard rc == 0, let first = result else {
            throw SocketError(operation: "resolve \(host)", code: rc == EAI_SYSTEM ? errno : 0, detail: String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(result) }
        var out: [SocketAddress4or6] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            if let sa = ai.pointee.ai_addr, ai.pointee.ai_family == AF_INET || ai.pointee.ai_family == AF_INET6 {
                var a = SocketAddress4or6()
                withUnsafeMutableBytes(of: &a.storage) { dst in
                    dst.copyMemory(from: UnsafeRawBufferPointer(start: sa, count: Int(ai.pointee.ai_addrlen)))
                }
                a.length = ai.pointee.ai_addrlen
                out.append(a)
            }
            p = ai.pointee.ai_next
        }
        // IPv4 first: "localhost" upstreams mostly listen on 127.0.0.1 only.
        return out.filter { $0.family == AF_INET } + out.filter { $0.family == AF_INET6 }
    }
}

extension SocketAddress4or6 {
    /// The address of an IP literal (`127.0.0.1`, `::1`), parsed without `getaddrinfo`; nil for
    /// anything that needs a lookup (a name, an IPv6 address with a zone).
    init?(numericHost host: String, port: Int) {
        guard !host.isEmpty, host.utf8.count <= Int(INET6_ADDRSTRLEN), (0...65535).contains(port) else { return nil }
        var address = sockaddr_storage()
        if host.utf8.contains(UInt8(ascii: ":")) {
            var a = sockaddr_in6()
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { return nil }
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = UInt16(port).bigEndian
            withUnsafeBytes(of: &a) { src in withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { return nil }
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(port).bigEndian
            withUnsafeBytes(of: &a) { src in withUnsafeMutableBytes(of: &address) { $0.copyMemory(from: src) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        storage = address
    }
}

/// A failed socket call.
struct SocketError: Error, CustomStringConvertible {
    var operation: String
    var code: Int32
    var detail: String = ""

    var description: String {
        let reason = detail.isEmpty ? String(cString: strerror(code)) : detail
        return "\(operation): \(reason)"
    }
}

enum Sockets {
    /// A listening socket on `host:port` (port 0: any), non-blocking, and the port it got.
    static func listen(host: String, port: Int, backlog: Int32 = 4096) throws(SocketError) -> (fd: Int32, port: Int) {
        let addresses = try SocketAddress4or6.resolve(host: host, port: port, passive: true)
        guard var address = addresses.first else { throw SocketError(operation: "listen on \(host):\(port)", code: EADDRNOTAVAIL) }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError(operation: "socket", code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, address.length) }
        }
        if bound != 0 {
            let e = errno
            close(fd)
            throw SocketError(operation: "bind \(host):\(port)", code: e)
        }
        if Glibc.listen(fd, backlog) != 0 {
            let e = errno
            close(fd)
            throw SocketError(operation: "listen \(host):\(port)", code: e)
        }
        var local = SocketAddress4or6()
        local.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &local.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &local.length) }
        }
        return (fd, local.port)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Starts a non-blocking connect. Returns the socket and whether it is already connected,
    /// or the error of a connect that failed at once.
    static func startConnect(to address: SocketAddress4or6) -> Result<(fd: Int32, connected: Bool), SocketError> {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(SocketError(operation: "socket", code: errno)) }
        setNoDelay(fd)
        var a = address
        let rc = withUnsafePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, a.length) }
        }
        if rc == 0 { return .success((fd, true)) }
        let e = errno
        if e == EINPROGRESS { return .success((fd, false)) }
        close(fd)
        return .failure(SocketError(operation: "connect", code: e))
    }
}

/// One reactor's registration of a listening socket (shared by all reactors, each woken
/// exclusively): accepts connections and hands each to `accepted`.
final class Acceptor: PollTarget {
    let fd: Int32
    unowned let reactor: Reactor
    let accepted: (Connection, SocketAddress4or6) -> Void
    private var stopped = false

    init(fd: Int32, reactor: Reactor, accepted: @escaping (Connection, SocketAddress4or6) -> Void) {
        self.fd = fd
        self.reactor = reactor
        self.accepted = accepted
    }

    func start() {
        reactor.register(fd, self, events: UInt32(EPOLLIN.rawValue) | EPOLLEXCLUSIVE.rawValue)
    }

    /// For good: the listening socket is closed after every reactor stopped.
    func stop() {
        stopped = true
        reactor.deregister(fd)
    }

    func ready(events: UInt32) {
        for _ in 0..<32 {
            var peer = SocketAddress4or6()
            peer.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &peer.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    accept4(fd, $0, &peer.length, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
                }
            }
            if client < 0 {
                let e = errno
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    // Out of descriptors: stop accepting for a moment instead of spinning.
                    reactor.deregister(fd)
                    reactor.schedule(at: .now() + .milliseconds(100)) { [weak self] in
                        if let self, !self.stopped { self.start() }
                    }
                }
                return
            }
            Sockets.setNoDelay(client)
            guard let connection = Connection(fd: client, reactor: reactor) else { continue }
            accepted(connection, peer)
        }
    }
}
