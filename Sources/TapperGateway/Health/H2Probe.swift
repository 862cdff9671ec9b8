#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#endif
import CTapperH2
import Dispatch

/// The active health probe of an h2c instance, over HTTP/2 with prior knowledge (a gRPC server
/// answers nothing else): `GET` of the health endpoint (healthy: 2xx or 3xx), or, for an
/// endpoint under `/grpc.health.v1.Health/`, the standard gRPC health check (healthy:
/// `grpc-status: 0` and `SERVING`). One blocking connection per probe on a thread of its own,
/// driven by nghttp2 like the data path's sessions.
enum H2Probe {
    /// What the instance answered.
    struct Answer: Equatable {
        var status = 0
        var grpcStatus: Int?
        var body: [UInt8] = []
    }

    static let grpcHealthPrefix = "/grpc.health.v1.Health/"

    /// Whether the answer means healthy.
    static func healthy(_ answer: Answer, grpc: Bool) -> Bool {
        guard grpc else { return (200..<400).contains(answer.status) }
        // One length-prefixed message: flag byte 0, 4-byte length, HealthCheckResponse whose
        // field 1 (status, varint) is 1 (SERVING).
        guard answer.status == 200, answer.grpcStatus == 0, answer.body.count >= 5, answer.body[0] == 0 else { return false }
        let length = Int(answer.body[1]) << 24 | Int(answer.body[2]) << 16 | Int(answer.body[3]) << 8 | Int(answer.body[4])
        guard answer.body.count >= 5 + length else { return false }
        let message = answer.body[5..<5 + length]
        var i = message.startIndex
        while i + 1 < message.endIndex {
            let tag = message[i]
            if tag == 0x08 { return message[i + 1] == 1 }
            // Skip other fields (the response has only `status`; be lenient about unknown ones).
            guard tag & 0x07 == 0 else { return false }
            i += 1
            while i < message.endIndex && message[i] & 0x80 != 0 { i += 1 }
            i += 1
        }
        return false
    }

    /// Probes `path` on `host:port` (its `:authority` is `authority`), within `timeout`.
    static func check(host: String, port: Int, authority: String, path: String, timeout: Duration) async -> Bool {
        let grpc = path.hasPrefix(grpcHealthPrefix)
        return await withCheckedContinuation { continuation in
            queue.async {
                let answer = run(host: host, port: port, authority: authority, path: path, grpc: grpc, timeout: timeout)
                continuation.resume(returning: answer.map { healthy($0, grpc: grpc) } ?? false)
            }
        }
    }

    /// Probes block (connect, then poll): never on the cooperative pool.
    private static let queue = DispatchQueue(label: "tapper.h2-probe", attributes: .concurrent)

    /// The probe itself, blocking; nil when there was no complete answer.
    static func run(host: String, port: Int, authority: String, path: String, grpc: Bool, timeout: Duration) -> Answer? {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        func remainingMillis() -> Int32 {
            let now = DispatchTime.now().uptimeNanoseconds
            return now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1))
        }
        guard let addresses = try? SocketAddress4or6.resolve(host: host, port: port), let address = addresses.first,
            case .success(let (fd, connected)) = Sockets.startConnect(to: address)
        else { return nil }
        defer { Glibc.close(fd) }
        if !connected {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, remainingMillis()) == 1 else { return nil }
            var error: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len)
            guard error == 0 else { return nil }
        }
        let state = ProbeState()
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, probeOnHeader)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, probeOnData)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, probeOnClose)
        var session: OpaquePointer?
        nghttp2_session_client_new(&session, callbacks, Unmanaged.passUnretained(state).toOpaque())
        nghttp2_session_callbacks_del(callbacks)
        guard let ng = session else { return nil }
        defer { nghttp2_session_del(ng) }
        nghttp2_submit_settings(ng, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil, 0)
        var list = H2HeaderList(fields: 7, bytes: 256)
        list.append(":method", (grpc ? "POST" : "GET").utf8)
        list.append(":scheme", "http".utf8)
        list.append(":authority", authority.utf8)
        list.append(":path", path.utf8)
        list.append("user-agent", "tapper-health-check".utf8)
        if grpc {
            list.append("content-type", "application/grpc".utf8)
            list.append("te", "trailers".utf8)
        }
        let id: Int32 = list.withNameValues { nva in
            guard grpc else { return nghttp2_submit_request(ng, nil, nva.baseAddress, nva.count, nil, nil) }
            // HealthCheckRequest with no service name: an empty message, 5 bytes of framing.
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: probeEmptyMessage)
            return nghttp2_submit_request(ng, nil, nva.baseAddress, nva.count, &provider, nil)
        }
        guard id > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while !state.closed {
            // Everything nghttp2 has to say, then what the instance answers.
            while nghttp2_session_want_write(ng) != 0 {
                var data: UnsafePointer<UInt8>? = nil
                let n = nghttp2_session_mem_send(ng, &data)
                if n < 0 { return nil }
                if n == 0 { break }
                var sent = 0
                while sent < n {
                    let w = send(fd, data! + sent, n - sent, Int32(MSG_NOSIGNAL))
                    if w > 0 {
                        sent += w
                        continue
                    }
                    guard w < 0, errno == EAGAIN || errno == EINTR else { return nil }
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    guard poll(&p, 1, remainingMillis()) == 1 else { return nil }
                }
            }
            if state.closed { break }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, remainingMillis()) == 1 else { return nil }
            let r = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if r < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            guard r > 0 else { return nil }
            let used = buffer.withUnsafeBytes { nghttp2_session_mem_recv(ng, $0.bindMemory(to: UInt8.self).baseAddress, r) }
            if used < 0 { return nil }
        }
        return state.errorCode == 0 && state.answer.status != 0 ? state.answer : nil
    }
}

private final class ProbeState {
    var answer = H2Probe.Answer()
    var closed = false
    var errorCode: UInt32 = 0
}

private func probeState(_ user: UnsafeMutableRawPointer?) -> ProbeState {
    Unmanaged<ProbeState>.fromOpaque(user!).takeUnretainedValue()
}

private let probeOnHeader: nghttp2_on_header_callback = { _, _, name, nameLength, value, valueLength, _, user in
    let state = probeState(user)
    let n = String(decoding: UnsafeRawBufferPointer(start: name, count: nameLength), as: UTF8.self)
    let v = String(decoding: UnsafeRawBufferPointer(start: value, count: valueLength), as: UTF8.self)
    // A body-less gRPC answer carries grpc-status with its headers, a full one in its trailers.
    if n == ":status" { state.answer.status = Int(v) ?? 0 } else if n == "grpc-status" { state.answer.grpcStatus = Int(v) }
    return 0
}

private let probeOnData: nghttp2_on_data_chunk_recv_callback = { _, _, _, data, length, user in
    let state = probeState(user)
    if state.answer.body.count < 64 * 1024 { state.answer.body += UnsafeBufferPointer(start: data, count: length) }
    return 0
}

private let probeOnClose: nghttp2_on_stream_close_callback = { _, _, errorCode, user in
    let state = probeState(user)
    state.closed = true
    state.errorCode = errorCode
    return 0
}

private let probeEmptyMessage: nghttp2_data_source_read_callback = { _, _, buffer, length, flags, _, _ in
    guard let buffer, let flags, length >= 5 else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    for i in 0..<5 { buffer[i] = 0 }
    flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    return 5
}
