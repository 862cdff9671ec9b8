import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Logging
import ServiceLifecycle
import TapperClient
import TapperCore

/// Keeps the gateway's merged OpenAPI document (``DocsState``) current, as a `Service`, off the
/// I/O threads.
///
/// It looks at the routing state every 100 ms (an atomic load) and at health every second; when
/// the catalog or the set of healthy services changed, it fetches the documents it does not
/// have yet, once per (service, version, `openapi_path`) from one healthy instance, merges
/// (``OpenAPIMerge``) and installs the bytes. A failed fetch is retried after
/// ``retryAfter``; meanwhile the service contributes its registered routes.
public struct OpenAPICollector: Service {
    let gateway: Gateway
    let logger: Logger
    let http: HTTPClient
    let fetchTimeout: Duration
    static let retryAfter: Duration = .seconds(5)
    /// The largest document fetched.
    static let maxDocumentBytes = 16 * 1024 * 1024

    public init(gateway: Gateway, logger: Logger, http: HTTPClient = TapperHTTPClient.shared, fetchTimeout: Duration = .seconds(5)) {
        self.gateway = gateway
        self.logger = logger
        self.http = http
        self.fetchTimeout = fetchTimeout
    }

    /// One document to fetch: a service's version at its `openapi_path`.
    struct FetchKey: Hashable, Sendable {
        var service: String
        var version: String
        var path: String
    }

    enum Fetched: Sendable {
        case document(JSONValue)
        case failed(at: ContinuousClock.Instant)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var cache: [FetchKey: Fetched] = [:]
            var lastSignature: [String: [String]]? = nil
            var lastIndex: UInt64? = nil
            var generation = -1
            var lastLook = ContinuousClock.now - .seconds(2)
            while !Task.isCancelled {
                let now = ContinuousClock.now
                let g = gateway.state.generation
                if g != generation || now - lastLook >= .seconds(1) {
                    generation = g
                    lastLook = now
                    let snapshot = gateway.state.snapshot
                    let routable = routableInstances(snapshot)
                    let retryDue = cache.values.contains { if case .failed(let at) = $0 { return now - at >= Self.retryAfter } else { return false } }
                    if routable != lastSignature || snapshot.catalog.index != lastIndex || retryDue {
                        await fetchMissing(snapshot: snapshot, routable: routable, cache: &cache)
                        let documents = cache.compactMapValues { if case .document(let d) = $0 { return d } else { return nil } }
                        let result = Self.merge(snapshot: snapshot, documents: documents, routable: routable)
                        gateway.docs.install(result.document.serialized())
                        lastSignature = routable
                        lastIndex = snapshot.catalog.index
                    }
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The routable instance ids of each service that has one, sorted.
    func routableInstances(_ snapshot: RoutingSnapshot) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for s in snapshot.catalog.services {
            let targets = s.instances.compactMap { snapshot.instances[s.name + "/" + $0.instanceID] }
            let ids = gateway.health.routable(targets).map(\.instanceID).sorted()
            if !ids.isEmpty { out[s.name] = ids }
        }
        return out
    }

    /// Fetches the documents of healthy services not in `cache` (failed ones again when due).
    func fetchMissing(snapshot: RoutingSnapshot, routable: [String: [String]], cache: inout [FetchKey: Fetched]) async {
        var wanted: [(FetchKey, UpstreamTarget)] = []
        let now = ContinuousClock.now
        for s in snapshot.catalog.services {
            guard let ids = routable[s.name], let pick = Self.documentInstance(s, routable: Set(ids)), let path = pick.registration.openapiPath,
                let target = snapshot.instances[s.name + "/" + pick.instanceID]
            else { continue }
            let key = FetchKey(service: s.name, version: pick.registration.version, path: path)
            switch cache[key] {
            case .document?: continue
            case .failed(let at)? where now - at < Self.retryAfter: continue
            default: wanted.append((key, target))
            }
        }
        guard !wanted.isEmpty else { return }
        let results = await withTaskGroup(of: (FetchKey, Fetched).self) { group in
            for (key, target) in wanted {
                group.addTask { (key, await self.fetch(key, from: target)) }
            }
            var out: [(FetchKey, Fetched)] = []
            for await r in group { out.append(r) }
            return out
        }
        for (key, value) in results { cache[key] = value }
    }

    func fetch(_ key: FetchKey, from target: UpstreamTarget) async -> Fetched {
        var request = HTTPClientRequest(url: target.url.description + key.path)
        request.headers.add(name: "User-Agent", value: "tapper-openapi")
        request.headers.add(name: "Accept", value: "application/json")
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(fetchTimeout.nanoseconds))
            let body = try await response.body.collect(upTo: Self.maxDocumentBytes)
            guard response.status.code == 200 else {
                logger.warning("OpenAPI document of \(key.service) \(key.version) at \(target.url)\(key.path) answered \(response.status.code); using its registered routes")
                return .failed(at: .now)
            }
            let document = try JSONValue(parsing: body.readableBytesView)
            return .document(document)
        } catch {
            logger.warning("OpenAPI document of \(key.service) \(key.version) at \(target.url)\(key.path) could not be read (\(error)); using its registered routes")
            return .failed(at: .now)
        }
    }

    /// The instance whose document stands for `service`: the most recently registered routable
    /// instance that has an `openapi_path` (its version is the newest deployed).
    static func documentInstance(_ service: CatalogSnapshot.Service, routable: Set<String>) -> InstanceRecord? {
        service.instances.filter { routable.contains($0.instanceID) && $0.registration.openapiPath != nil }.max { $0.createIndex < $1.createIndex }
    }

    /// The merged document of `snapshot`'s services.
    /// - Parameters:
    ///   - documents: the fetched documents.
    ///   - routable: routable instance ids by service; services absent are left out (nil: every
    ///     service with every instance).
    static func merge(snapshot: RoutingSnapshot, documents: [FetchKey: JSONValue], routable: [String: [String]]?) -> OpenAPIMerge.Result {
        var sources: [OpenAPIMerge.Source] = []
        for s in snapshot.catalog.services {
            let ids = routable.map { Set($0[s.name] ?? []) } ?? Set(s.instances.map(\.instanceID))
            let live = s.instances.filter { ids.contains($0.instanceID) }
            guard let first = live.first else { continue }
            var routes: [RouteSpec] = []
            var seen = Set<RouteSpec>()
            for r in live.flatMap(\.registration.routes) where seen.insert(r).inserted { routes.append(r) }
            var document: JSONValue? = nil
            if let pick = documentInstance(s, routable: ids), let path = pick.registration.openapiPath {
                document = documents[FetchKey(service: s.name, version: pick.registration.version, path: path)]
            }
            sources.append(
                OpenAPIMerge.Source(
                    service: s.name, prefix: first.registration.prefix, description: first.registration.description,
                    versions: Array(Set(live.map(\.registration.version))).sorted(), routes: routes, document: document
                ))
        }
        var owners: [String: String] = [:]
        for e in snapshot.table.entries {
            owners[OpenAPIMerge.ownerKey(method: e.methods.first ?? "*", shape: OpenAPIMerge.untypedShape(e.template))] = e.service
        }
        return OpenAPIMerge.merge(sources, owners: owners, version: String(snapshot.catalog.index))
    }
}
