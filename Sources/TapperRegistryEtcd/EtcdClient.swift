import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TapperCore

/// A minimal client of etcd's v3 JSON gateway (`POST /v3/...`) with endpoint failover.
///
/// etcd 3.4's gateway writes every 64-bit integer as a JSON string, leaves out fields that have
/// their default value (a false `succeeded`, an empty `kvs`, a PUT event's `type`) and base64s
/// keys and values; the helpers here read it that way.
public final class EtcdClient: Sendable {
    public let configuration: EtcdConfiguration
    let http: HTTPClient
    /// The endpoint that answered last; requests start there.
    private let preferred = Mutex(0)

    public init(configuration: EtcdConfiguration, http: HTTPClient = .shared) {
        self.configuration = configuration
        self.http = http
    }

    /// JSON object of a response.
    public typealias Object = [String: Any]

    /// Posts `body` to `path` on the preferred endpoint, failing over to the next on a transport
    /// error or a 5xx.
    public func post(_ path: String, _ body: Object) async throws -> Object {
        let data = try JSONSerialization.data(withJSONObject: body)
        let count = configuration.endpoints.count
        let start = preferred.withLock { $0 }
        var lastError: any Error = EtcdError.noEndpoints
        for i in 0..<count {
            let e = (start + i) % count
            do {
                var request = HTTPClientRequest(url: configuration.endpoints[e] + path)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: data))
                let response = try await http.execute(request, timeout: Self.timeAmount(configuration.requestTimeout))
                let bytes = try await response.body.collect(upTo: 64 << 20)
                guard response.status.code < 500 else {
                    lastError = EtcdError.http(Int(response.status.code), String(buffer: bytes))
                    continue
                }
                guard response.status.code == 200 else { throw EtcdError.http(Int(response.status.code), String(buffer: bytes)) }
                preferred.withLock { $0 = e }
                return (try JSONSerialization.jsonObject(with: Data(bytes.readableBytesView)) as? Object) ?? [:]
            } catch let error as EtcdError {
                throw error
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Opens `POST /v3/watch` and calls `onLine` with each JSON object of the stream (one per
    /// line); returns when the stream ends and throws when it breaks.
    func stream(_ path: String, _ body: Object, onLine: (Object) async throws -> Void) async throws {
        let data = try JSONSerialization.data(withJSONObject: body)
        let count = configuration.endpoints.count
        let start = preferred.withLock { $0 }
        var lastError: any Error = EtcdError.noEndpoints
        for i in 0..<count {
            let e = (start + i) % count
            let response: HTTPClientResponse
            do {
                var request = HTTPClientRequest(url: configuration.endpoints[e] + path)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: data))
                // The deadline only covers the response head (etcd sends it with `created` at
                // once); the stream itself may then stay open and idle for as long as it likes.
                response = try await http.execute(request, timeout: Self.timeAmount(configuration.requestTimeout))
            } catch {
                lastError = error
                continue
            }
            guard response.status.code == 200 else { throw EtcdError.http(Int(response.status.code), "watch refused") }
            preferred.withLock { $0 = e }
            var pending: [UInt8] = []
            for try await chunk in response.body {
                pending.append(contentsOf: chunk.readableBytesView)
                while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = pending[..<nl]
                    pending.removeSubrange(...nl)
                    guard !line.isEmpty, let o = try? JSONSerialization.jsonObject(with: Data(line)) as? Object else { continue }
                    try await onLine(o)
                }
            }
            return
        }
        throw lastError
    }

    static func timeAmount(_ d: Duration) -> TimeAmount {
        .nanoseconds(d.nanoseconds)
    }

    // MARK: JSON helpers

    /// A 64-bit integer field, given as a string (or, defensively, a number); 0 when omitted.
    static func int(_ o: Object?, _ key: String) -> Int64 {
        switch o?[key] {
        case let s as String: return Int64(s) ?? 0
        case let n as NSNumber: return n.int64Value
        default: return 0
        }
    }

    static func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }

    static func unb64(_ any: Any?) -> Data? {
        guard let s = any as? String else { return nil }
        return Data(base64Encoded: s)
    }

    /// The end of the range covering every key that starts with `prefix`.
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes).base64EncodedString()
            }
            bytes.removeLast()
        }
        return Data([0]).base64EncodedString()
    }
}

/// Failures talking to etcd.
public enum EtcdError: Error, CustomStringConvertible, Sendable {
    case noEndpoints
    case http(Int, String)
    case unexpected(String)

    public var description: String {
        switch self {
        case .noEndpoints: return "no etcd endpoint configured"
        case .http(let status, let body): return "etcd answered \(status): \(body.prefix(200))"
        case .unexpected(let s): return "unexpected etcd reply: \(s)"
        }
    }
}
