import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TapperCore
import TapperRegistry

/// The registry's catalog in Consul, through its agent, catalog, health and KV HTTP APIs.
///
/// - An instance is an agent service registration (`PUT /v1/agent/service/register`): ID
///   `tapper:SERVICE:INSTANCE`, Name `SERVICE`, Tags `tapper` plus the registration's tags,
///   Address/Port from its URL, and a TTL check (`Check.TTL`, initially passing, deregistered by
///   Consul after a minute critical). A heartbeat passes the check
///   (`PUT /v1/agent/check/pass/service:ID`).
/// - The full registration travels in the service's Meta: Consul Meta values are strings of at
///   most 512 characters, so the registration's JSON is base64-encoded and split over
///   `tapper_reg_0`, `tapper_reg_1`, … (`tapper_chunks` says how many). At most 60 chunks
///   (about 22 KB of JSON) fit in Consul's 64 Meta keys; bigger registrations are refused (400).
/// - Reads list `/v1/catalog/services` (services tagged `tapper`) and each one's
///   `/v1/health/service/NAME`; an instance whose TTL check is not passing has expired and is left
///   out. The change index is the highest `X-Consul-Index` of those reads. Changes are followed
///   with a blocking query on `/v1/health/state/any` (`?index=N&wait=…`), which moves on every
///   registration, deregistration and check status change.
/// - Route-ownership writes hold a lock in the KV key `tapper/guard`, taken and released with
///   compare-and-set (`?cas=MODIFY_INDEX`): a writer locks the guard at the index of the catalog
///   read its conflict check used (so it fails when anyone wrote since), registers, and frees the
///   guard. A reader that finds the guard locked retries, so no one checks against a catalog
///   that misses a registration in flight. A lock older than ``lockExpiry`` (a crashed writer) is
///   taken over.
public final class ConsulStore: CatalogStore {
    public let baseURL: String
    let http: HTTPClient
    let logger: Logger
    let requestTimeout: Duration
    static let guardKey = "tapper/guard"
    static let tag = "tapper"
    static let chunkSize = 512
    static let maxChunks = 60
    /// A guard locked longer than this belongs to a writer that died; it may be taken over.
    static let lockExpiry: Duration = .seconds(10)
    /// The guard token of a catalog read while another writer held the lock: never written.
    static let busy = UInt64.max

    public var displayName: String { "consul://" + baseURL.dropFirst("http://".count) }

    /// - Parameter url: `consul://host:port`.
    public init(url: String, logger: Logger, http: HTTPClient = .shared, requestTimeout: Duration = .seconds(3)) throws {
        guard url.lowercased().hasPrefix("consul://") else { throw ConsulError.badURL("'\(url)' is not a consul:// URL") }
        var hostPort = url.dropFirst("consul://".count)
        if let slash = hostPort.firstIndex(of: "/") { hostPort = hostPort[..<slash] }
        guard let colon = hostPort.lastIndex(of: ":"), !hostPort[..<colon].isEmpty, let port = Int(hostPort[hostPort.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw ConsulError.badURL("'\(url)' must be consul://host:port") }
        self.baseURL = "http://\(hostPort)"
        self.http = http
        self.logger = logger
        self.requestTimeout = requestTimeout
    }

    static func serviceID(_ service: String, _ instanceID: String) -> String { "tapper:\(service):\(instanceID)" }
    static func checkID(_ serviceID: String) -> String { "service:" + serviceID }

    struct Reply {
        var status: Int
        var index: UInt64
        var body: Data
        func json() -> Any? { try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) }
    }

    func call(_ method: HTTPMethod, _ path: String, body: Data? = nil, timeout: Duration? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let t = timeout ?? requestTimeout
        let response = try await http.execute(request, timeout: .nanoseconds(t.nanoseconds))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let status = Int(response.status.code)
        if status >= 500 && status != 503 { throw ConsulError.http(status, String(buffer: bytes)) }
        return Reply(status: status, index: response.headers.first(name: "X-Consul-Index").flatMap(UInt64.init) ?? 0, body: Data(bytes.readableBytesView))
    }

    static func escaped(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#"))) ?? s }

    // MARK: Meta encoding

    /// The registration as Meta entries (base64 JSON in chunks of at most 512 characters).
    static func meta(for record: InstanceRecord) throws -> [String: String] {
        let json = try JSONEncoder().encode(record.registration)
        let b64 = json.base64EncodedString()
        var chunks: [String] = []
        var rest = Substring(b64)
        while !rest.isEmpty {
            chunks.append(String(rest.prefix(chunkSize)))
            rest = rest.dropFirst(chunkSize)
        }
        guard chunks.count <= maxChunks else {
            throw RegistryBackendError.invalid(FieldError(field: "routes", message: "this registration is too large for Consul service Meta (at most \(maxChunks) × \(chunkSize) characters of base64 JSON); register fewer routes"))
        }
        var meta = ["tapper_service": record.service, "tapper_instance": record.instanceID, "tapper_chunks": String(chunks.count)]
        for (i, c) in chunks.enumerated() { meta["tapper_reg_\(i)"] = c }
        return meta
    }

    static func registration(fromMeta meta: [String: String]) -> ServiceRegistration? {
        guard let n = meta["tapper_chunks"].flatMap(Int.init), n <= maxChunks else { return nil }
        var b64 = ""
        for i in 0..<n {
            guard let c = meta["tapper_reg_\(i)"] else { return nil }
            b64 += c
        }
        guard let data = Data(base64Encoded: b64) else { return nil }
        return try? JSONDecoder().decode(ServiceRegistration.self, from: data)
    }

    // MARK: CatalogStore

    public func load() async throws -> StoreRead {
        // The guard first, the catalog after: a writer that registers and frees the guard after
        // this read moves the guard's index, so a write at this token fails; one that did so
        // before it is in the catalog read below. (Read the other way round, a registration
        // that landed between the two reads was missing from the conflict check while its freed
        // guard was accepted: two services could both win one route.)
        let guardReply = try await call(.GET, "/v1/kv/\(Self.guardKey)")
        var guardToken: UInt64 = 0
        if guardReply.status == 200, let first = (guardReply.json() as? [[String: Any]])?.first {
            guardToken = (first["ModifyIndex"] as? NSNumber)?.uint64Value ?? 0
            let value = (first["Value"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
            if Self.isLocked(value, now: Date()) { guardToken = Self.busy }
        }
        let services = try await call(.GET, "/v1/catalog/services")
        var index = services.index
        var records: [InstanceRecord] = []
        let names = (services.json() as? [String: [String]] ?? [:]).filter { $0.value.contains(Self.tag) }.keys.sorted()
        for name in names {
            let health = try await call(.GET, "/v1/health/service/\(Self.escaped(name))")
            index = max(index, health.index)
            for entry in health.json() as? [[String: Any]] ?? [] {
                guard let s = entry["Service"] as? [String: Any], let id = s["ID"] as? String, let meta = s["Meta"] as? [String: String],
                    let service = meta["tapper_service"], let instance = meta["tapper_instance"], let registration = Self.registration(fromMeta: meta)
                else { continue }
                let checks = entry["Checks"] as? [[String: Any]] ?? []
                let passing = checks.contains { ($0["CheckID"] as? String) == Self.checkID(id) && ($0["Status"] as? String) == "passing" }
                guard passing else { continue }
                records.append(
                    InstanceRecord(
                        service: service, instanceID: instance, registration: registration,
                        createIndex: (s["CreateIndex"] as? NSNumber)?.uint64Value ?? 0, modifyIndex: (s["ModifyIndex"] as? NSNumber)?.uint64Value ?? 0
                    )
                )
            }
        }
        return StoreRead(snapshot: CatalogSnapshot(index: index, instances: records), guardToken: guardToken)
    }

    /// Whether a guard value is a live lock (`locked EPOCH_MS`).
    static func isLocked(_ value: String, now: Date) -> Bool {
        let parts = value.split(separator: " ")
        guard parts.count == 2, parts[0] == "locked", let ms = Double(parts[1]) else { return false }
        let age = now.timeIntervalSince1970 * 1000 - ms
        return age < Double(lockExpiry.components.seconds) * 1000
    }

    /// Compare-and-set of the guard; true when it was at `index`.
    func casGuard(_ index: UInt64, _ value: String) async throws -> Bool {
        let cas = try await call(.PUT, "/v1/kv/\(Self.guardKey)?cas=\(index)", body: Data(value.utf8))
        guard cas.status == 200 else { throw ConsulError.http(cas.status, String(decoding: cas.body, as: UTF8.self)) }
        return String(decoding: cas.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    /// The guard's current ModifyIndex.
    func guardIndex() async throws -> UInt64 {
        let reply = try await call(.GET, "/v1/kv/\(Self.guardKey)")
        return ((reply.json() as? [[String: Any]])?.first?["ModifyIndex"] as? NSNumber)?.uint64Value ?? 0
    }

    public func write(_ record: InstanceRecord, guard token: UInt64) async throws -> InstanceRecord? {
        let meta = try Self.meta(for: record)
        guard token != Self.busy else { return nil }
        guard try await casGuard(token, "locked \(Int64(Date().timeIntervalSince1970 * 1000))") else { return nil }
        // Locked at the index our conflict check read: register, then free the guard (its new
        // index tells everyone who read before that they must read again).
        do {
            let stored = try await register(record, meta: meta)
            await releaseGuard()
            return stored
        } catch {
            await releaseGuard()
            throw error
        }
    }

    func releaseGuard() async {
        if let locked = try? await guardIndex() { _ = try? await casGuard(locked, "free") }
    }

    func register(_ record: InstanceRecord, meta: [String: String]) async throws -> InstanceRecord {
        let id = Self.serviceID(record.service, record.instanceID)
        let url = record.registration.serviceURL
        let ttlMillis = max(1000, Int((record.registration.ttlSeconds * 1000).rounded()))
        let body: [String: Any] = [
            "ID": id, "Name": record.service, "Tags": [Self.tag] + record.registration.tags, "Meta": meta,
            "Address": url?.host ?? "", "Port": url?.port ?? 0,
            "Check": ["CheckID": Self.checkID(id), "TTL": "\(ttlMillis)ms", "Status": "passing", "DeregisterCriticalServiceAfter": "1m"],
        ]
        let reply = try await call(.PUT, "/v1/agent/service/register", body: try JSONSerialization.data(withJSONObject: body))
        guard reply.status == 200 else { throw ConsulError.http(reply.status, String(decoding: reply.body, as: UTF8.self)) }
        let entries = try await call(.GET, "/v1/catalog/service/\(Self.escaped(record.service))")
        var stored = record
        for e in entries.json() as? [[String: Any]] ?? [] where e["ServiceID"] as? String == id {
            stored.createIndex = (e["CreateIndex"] as? NSNumber)?.uint64Value ?? entries.index
            stored.modifyIndex = (e["ModifyIndex"] as? NSNumber)?.uint64Value ?? entries.index
        }
        return stored
    }

    /// The agent's view of one instance: nil when unknown, else whether its check is passing.
    func localHealth(_ id: String) async throws -> Bool? {
        let reply = try await call(.GET, "/v1/agent/health/service/id/\(Self.escaped(id))")
        switch reply.status {
        case 404: return nil
        case 200: return true
        default: return false
        }
    }

    public func refresh(service: String, instanceID: String) async throws -> Bool {
        let id = Self.serviceID(service, instanceID)
        switch try await localHealth(id) {
        case nil:
            return false
        case false?:
            // Expired (check critical): Tapper's contract is that the client registers again.
            _ = try await call(.PUT, "/v1/agent/service/deregister/\(Self.escaped(id))")
            return false
        case true?:
            let reply = try await call(.PUT, "/v1/agent/check/pass/\(Self.escaped(Self.checkID(id)))")
            return reply.status == 200
        }
    }

    public func remove(service: String, instanceID: String) async throws -> Bool {
        let id = Self.serviceID(service, instanceID)
        guard let passing = try await localHealth(id) else { return false }
        let reply = try await call(.PUT, "/v1/agent/service/deregister/\(Self.escaped(id))")
        return reply.status == 200 && passing
    }

    /// Blocking queries on `/v1/health/state/any`: every registration, deregistration and check
    /// status change moves its index.
    public func notifications(_ changed: @escaping @Sendable () -> Void) async {
        var index: UInt64 = 0
        var failures = 0
        while !Task.isCancelled {
            do {
                let reply = try await call(.GET, "/v1/health/state/any?index=\(index)&wait=30s", timeout: .seconds(40))
                failures = 0
                // Consul: reset to 0 when the index went backwards (e.g. a restored snapshot).
                if reply.index != index { changed() }
                index = reply.index < index ? 0 : reply.index
            } catch {
                if Task.isCancelled { return }
                failures += 1
                index = 0
                if failures == 1 { logger.warning("consul blocking query on \(displayName) failed; retrying: \(error)") }
                try? await Task.sleep(for: min(.milliseconds(50) * (1 << min(failures, 6)), .seconds(2)))
            }
        }
    }
}

/// Failures talking to Consul.
public enum ConsulError: Error, CustomStringConvertible, Sendable {
    case badURL(String)
    case http(Int, String)

    public var description: String {
        switch self {
        case .badURL(let s): return s
        case .http(let status, let body): return "consul answered \(status): \(body.prefix(200))"
        }
    }
}

/// The Consul backend: ``StoreBackend`` over a ``ConsulStore``.
public typealias ConsulBackend = StoreBackend<ConsulStore>

extension StoreBackend where Store == ConsulStore {
    /// A backend for `consul://host:port`.
    public convenience init(consulURL: String, resyncInterval: Duration = .seconds(5), logger: Logger) throws {
        self.init(store: try ConsulStore(url: consulURL, logger: logger), resyncInterval: resyncInterval, logger: logger)
    }
}
