// An experiment, not product code: the floor of a gateway data path without SwiftNIO.
//
// One thread, level-triggered epoll over raw non-blocking sockets, with tapper's own
// HTTPHeadParser, RouteTable and HeaderRules (their sources are compiled into this binary, see
// run.sh --floor). Per
// request it does the work the real data path does on the benchmark's requests: parse the
// request head, route it (`GET /users/{user_id}`), pick an instance round-robin, take a pooled
// keep-alive upstream connection, rewrite the head (hop-by-hop and gateway-owned headers
// dropped, X-Forwarded-For/-Proto/-Host and a generated X-Request-ID added), flush upstream
// writes at the end of the epoll batch, parse the response head, rewrite it (X-Request-ID
// added) and write it with its Content-Length body to the client, and count the request.
//
// What it leaves out (the real gateway has them): request bodies, chunked or streamed
// responses, timeouts, retries, health, auth, metrics export, logging, backpressure beyond a
// pending-write buffer. So it is a lower bound for a NIO-free design, measured by floor.sh in the
// same run as nginx doing the same header work.
//
// Usage: floor PORT BACKEND_PORT [BACKEND_PORT...]
import Glibc

@inline(__always) func die(_ what: String) -> Never {
    perror(what)
    exit(1)
}

/// A growable byte buffer: bytes in `0..<count`.
struct Bytes {
    var base: UnsafeMutableRawPointer
    var capacity: Int
    var count = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }

    mutating func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var c = capacity * 2
        while c < count + extra { c *= 2 }
        let n = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 16)
        n.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = n
        capacity = c
    }

    @inline(__always) mutating func append(_ p: UnsafeRawPointer, _ n: Int) {
        reserve(n)
        (base + count).copyMemory(from: p, byteCount: n)
        count += n
    }

    @inline(__always) mutating func append(_ raw: UnsafeRawBufferPointer, _ r: Range<Int>) {
        append(raw.baseAddress! + r.lowerBound, r.count)
    }

    @inline(__always) mutating func append(_ s: StaticString) {
        append(s.utf8Start, s.utf8CodeUnitCount)
    }

    mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { append($0.baseAddress!, $0.count) }
    }

    /// Drops the first `n` bytes.
    mutating func consume(_ n: Int) {
        if n >= count {
            count = 0
            return
        }
        memmove(base, base + n, count - n)
        count -= n
    }

    var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

final class Conn {
    let fd: Int32
    let isUpstream: Bool
    var input = Bytes(capacity: 16 * 1024)
    var output = Bytes(capacity: 16 * 1024)
    var wantsWrite = false
    /// Client: the upstream serving its current request. Upstream: the client it serves.
    unowned(unsafe) var peer: Conn?
    var busy = false
    var requestID = Bytes(capacity: 40)
    var target = 0
    var closed = false

    init(fd: Int32, isUpstream: Bool) {
        self.fd = fd
        self.isUpstream = isUpstream
    }
}

final class Proxy {
    let epfd: Int32
    var conns: [Conn?] = Array(repeating: nil, count: 65536)
    let table: RouteTable
    let backends: [UInt16]
    var idle: [[Conn]]
    var next = 0
    var toFlush: [Conn] = []
    var served = 0
    var ridCounter: UInt64 = 0
    let peerIP = "127.0.0.1"
    let limits = HTTPHeadParser.Limits(maxHeadBytes: 8192 + 8192 + 1024, maxTargetBytes: 8192, maxHeaderCount: 1000)

    init(port: UInt16, backends: [UInt16]) {
        epfd = epoll_create1(0)
        self.backends = backends
        idle = Array(repeating: [], count: backends.count)
        var records: [InstanceRecord] = []
        for (i, b) in backends.enumerated() {
            let reg = ServiceRegistration(url: "http://127.0.0.1:\(b)", routes: [RouteSpec(methods: ["GET"], path: "/users/{user_id}")])
            records.append(InstanceRecord(service: "users", instanceID: "i\(i)", registration: reg, createIndex: UInt64(i + 1), modifyIndex: UInt64(i + 1)))
        }
        table = RouteTable(snapshot: CatalogSnapshot(index: 1, instances: records))

        let lfd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var one: Int32 = 1
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = Self.loopback(port)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(lfd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 { die("bind") }
        if listen(lfd, 1024) != 0 { die("listen") }
        register(lfd, events: EPOLLIN.rawValue)
        listenFD = lfd
    }

    var listenFD: Int32 = -1

    static func loopback(_ port: UInt16) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return a
    }

    func register(_ fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
    }

    func modify(_ fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    func run() -> Never {
        var events = [epoll_event](repeating: epoll_event(), count: 512)
        while true {
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, 512, -1) }
            if n < 0 {
                if errno == EINTR { continue }
                die("epoll_wait")
            }
            for i in 0..<Int(n) {
                let fd = events[i].data.fd
                let ev = events[i].events
                if fd == listenFD {
                    acceptAll()
                    continue
                }
                guard let c = conns[Int(fd)] else { continue }
                if ev & EPOLLOUT.rawValue != 0 { flush(c) }
                if ev & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    if c.isUpstream { upstreamReadable(c) } else { clientReadable(c) }
                }
            }
            // Upstream requests of this batch go out together (as the real gateway does).
            for u in toFlush { flush(u) }
            toFlush.removeAll(keepingCapacity: true)
        }
    }

    func acceptAll() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            conns[Int(fd)] = Conn(fd: fd, isUpstream: false)
            register(fd, events: EPOLLIN.rawValue)
        }
    }

    /// Reads what the socket has into `c.input`; false when the peer closed or failed.
    func readInto(_ c: Conn) -> Bool {
        c.input.reserve(8192)
        let n = read(c.fd, c.input.base + c.input.count, c.input.capacity - c.input.count)
        if n > 0 {
            c.input.count += n
            return true
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return true }
        return false
    }

    func close(_ c: Conn) {
        guard !c.closed else { return }
        c.closed = true
        conns[Int(c.fd)] = nil
        Glibc.close(c.fd)
        if c.isUpstream {
            if let i = idle[c.target].firstIndex(where: { $0 === c }) { idle[c.target].remove(at: i) }
        }
        if let p = c.peer {
            c.peer = nil
            p.peer = nil
            close(p)
        }
    }

    func flush(_ c: Conn) {
        guard !c.closed, c.output.count > 0 else { return }
        let n = write(c.fd, c.output.base, c.output.count)
        if n < 0 {
            if errno == EAGAIN { return setWantsWrite(c, true) }
            return close(c)
        }
        c.output.consume(n)
        setWantsWrite(c, c.output.count > 0)
    }

    func setWantsWrite(_ c: Conn, _ on: Bool) {
        guard c.wantsWrite != on else { return }
        c.wantsWrite = on
        modify(c.fd, events: EPOLLIN.rawValue | (on ? EPOLLOUT.rawValue : 0))
    }

    func clientReadable(_ c: Conn) {
        if !readInto(c) { return close(c) }
        processClient(c)
    }

    func processClient(_ c: Conn) {
        while !c.busy, c.input.count > 0 {
            let parsed = HTTPHeadParser.parse(c.input.raw, kind: .request, limits: limits)
            guard case .success(let head) = parsed else {
                if case .failure(.incomplete) = parsed { return }
                c.output.append("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                flush(c)
                return close(c)
            }
            guard startRequest(c, head) else { return }
            c.input.consume(head.length)
        }
    }

    /// Routes and forwards one request head; false when the connection was closed.
    func startRequest(_ c: Conn, _ head: HTTPHeadParser.Head) -> Bool {
        let raw = c.input.raw
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: raw[head.method]), as: UTF8.self)
        let uri = String(decoding: UnsafeRawBufferPointer(rebasing: raw[head.target]), as: UTF8.self)
        let path: Substring
        if let q = uri.utf8.firstIndex(of: UInt8(ascii: "?")) { path = uri[..<q] } else { path = Substring(uri) }
        guard case .matched = table.resolveEntry(method: method, path: path) else {
            c.output.append("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            flush(c)
            return true
        }
        let t = next % backends.count
        next &+= 1
        let u: Conn
        if let pooled = idle[t].popLast() {
            u = pooled
        } else {
            guard let fresh = connectUpstream(t) else {
                c.output.append("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                flush(c)
                return true
            }
            u = fresh
        }
        u.busy = true
        c.busy = true
        u.peer = c
        c.peer = u
        // Request id: 32 hex digits.
        c.requestID.count = 0
        ridCounter &+= 1
        var v = ridCounter &* 0x9E37_79B9_7F4A_7C15
        let hex: StaticString = "0123456789abcdef"
        for _ in 0..<32 {
            c.requestID.append(hex.utf8Start + Int(v & 15), 1)
            v = (v >> 4) | (v << 60)
        }
        // The upstream head.
        var out = u.output
        out.append(raw, head.method)
        out.append(" ")
        out.append(raw, head.target)
        out.append(" HTTP/1.1\r\n")
        var host: Range<Int>? = nil
        for h in head.headers {
            if host == nil && raw.equalsIgnoringCase(h.name, "host") { host = h.value }
            if HeaderRules.isHopByHop(raw, h.name) || HeaderRules.isGatewayOwned(raw, h.name) { continue }
            out.append(raw, h.name.lowerBound..<h.value.upperBound)
            out.append("\r\n")
        }
        out.append("X-Forwarded-For: ")
        out.append(peerIP)
        out.append("\r\nX-Forwarded-Proto: http\r\n")
        if let host {
            out.append("X-Forwarded-Host: ")
            out.append(raw, host)
            out.append("\r\n")
        }
        out.append("X-Request-ID: ")
        out.append(UnsafeRawPointer(c.requestID.base), c.requestID.count)
        out.append("\r\n\r\n")
        u.output = out
        toFlush.append(u)
        return true
    }

    func connectUpstream(_ t: Int) -> Conn? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = Self.loopback(backends[t])
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if r != 0 {
            Glibc.close(fd)
            return nil
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let u = Conn(fd: fd, isUpstream: true)
        u.target = t
        conns[Int(fd)] = u
        register(fd, events: EPOLLIN.rawValue)
        return u
    }

    func upstreamReadable(_ u: Conn) {
        if !readInto(u) { return close(u) }
        guard let c = u.peer else {
            // Bytes (or a close) on an idle connection: drop it.
            return close(u)
        }
        let parsed = HTTPHeadParser.parse(u.input.raw, kind: .response, limits: limits)
        guard case .success(let head) = parsed else {
            if case .failure(.incomplete) = parsed { return }
            return close(u)
        }
        guard case .contentLength(let length) = head.framing else { return close(u) }
        let total = head.length + Int(length)
        guard u.input.count >= total else { return }
        let raw = u.input.raw
        var out = c.output
        out.append("HTTP/1.1")
        let lineEnd = head.headers.first.map { $0.name.lowerBound - 2 } ?? head.length - 4
        out.append(raw, 8..<lineEnd)
        out.append("\r\n")
        for h in head.headers {
            if HeaderRules.isHopByHop(raw, h.name) || raw.equalsIgnoringCase(h.name, "x-request-id") { continue }
            out.append(raw, h.name.lowerBound..<h.value.upperBound)
            out.append("\r\n")
        }
        out.append("X-Request-ID: ")
        out.append(UnsafeRawPointer(c.requestID.base), c.requestID.count)
        out.append("\r\n\r\n")
        out.append(raw, head.length..<total)
        c.output = out
        u.input.consume(total)
        // The exchange is done: the upstream goes back to the pool, the client goes on.
        u.busy = false
        u.peer = nil
        c.peer = nil
        c.busy = false
        idle[u.target].append(u)
        served &+= 1
        flush(c)
        if !c.closed { processClient(c) }
    }
}

signal(SIGPIPE, SIG_IGN)
let args = CommandLine.arguments
guard args.count >= 3, let port = UInt16(args[1]) else {
    print("usage: floor PORT BACKEND_PORT [BACKEND_PORT...]")
    exit(2)
}
Proxy(port: port, backends: args.dropFirst(2).compactMap { UInt16($0) }).run()
