import Foundation
import Logging
import TapperCore
import TapperRegistry

/// The registry's catalog in etcd (v3 JSON gateway).
///
/// Layout under the prefix (default `/tapper/`):
/// - `PREFIX i/SERVICE/INSTANCE` — the instance record as JSON, attached to a lease of its TTL,
///   so expiry is etcd's own; a heartbeat is `POST /v3/lease/keepalive` of that lease;
/// - `PREFIX guard` — rewritten by every registration; its `mod_revision` is the write guard: a
///   registration is a Txn that only succeeds when the guard has not moved since the catalog
///   the route-ownership check read.
///
/// The change index is etcd's revision (header revision of the read); record indices are the
/// keys' create/mod revisions. Changes are pushed by `POST /v3/watch` on the prefix, resumed
/// from the last seen revision after a disconnect.
public final class EtcdStore: CatalogStore {
    public let client: EtcdClient
    let logger: Logger

    public var displayName: String { client.configuration.displayName }
    var prefix: String { client.configuration.prefix }
    var guardKey: String { prefix + "guard" }
    func key(_ service: String, _ instanceID: String) -> String { "\(prefix)i/\(service)/\(instanceID)" }

    public init(configuration: EtcdConfiguration, logger: Logger) {
        self.client = EtcdClient(configuration: configuration)
        self.logger = logger
    }

    public func load() async throws -> StoreRead {
        let reply = try await client.post("/v3/kv/range", ["key": EtcdClient.b64(prefix), "range_end": EtcdClient.prefixEnd(prefix)])
        let revision = UInt64(max(0, EtcdClient.int(reply["header"] as? EtcdClient.Object, "revision")))
        var guardToken: UInt64 = 0
        var records: [InstanceRecord] = []
        let instancePrefix = prefix + "i/"
        for kv in reply["kvs"] as? [EtcdClient.Object] ?? [] {
            guard let keyData = EtcdClient.unb64(kv["key"]), let key = String(data: keyData, encoding: .utf8) else { continue }
            if key == guardKey {
                guardToken = UInt64(max(0, EtcdClient.int(kv, "mod_revision")))
                continue
            }
            guard key.hasPrefix(instancePrefix), let value = EtcdClient.unb64(kv["value"]),
                var record = try? JSONDecoder().decode(InstanceRecord.self, from: value)
            else { continue }
            record.createIndex = UInt64(max(0, EtcdClient.int(kv, "create_revision")))
            record.modifyIndex = UInt64(max(0, EtcdClient.int(kv, "mod_revision")))
            records.append(record)
        }
        return StoreRead(snapshot: CatalogSnapshot(index: revision, instances: records), guardToken: guardToken)
    }

    public func write(_ record: InstanceRecord, guard token: UInt64) async throws -> InstanceRecord? {
        let ttl = Int64(record.registration.ttlSeconds.rounded(.up))
        let lease = try await client.post("/v3/lease/grant", ["TTL": String(ttl)])
        let leaseID = EtcdClient.int(lease, "ID")
        guard leaseID != 0 else { throw EtcdError.unexpected("lease grant without an ID") }
        var stored = record
        stored.heartbeatAgeSeconds = nil
        stored.expiresInSeconds = nil
        let json = try JSONEncoder().encode(stored)
        let txn: EtcdClient.Object = [
            "compare": [["key": EtcdClient.b64(guardKey), "target": "MOD", "result": "EQUAL", "mod_revision": String(token)]],
            "success": [
                ["request_put": ["key": EtcdClient.b64(key(record.service, record.instanceID)), "value": json.base64EncodedString(), "lease": String(leaseID)]],
                ["request_put": ["key": EtcdClient.b64(guardKey), "value": EtcdClient.b64(record.service + "/" + record.instanceID)]],
            ],
        ]
        let reply = try await client.post("/v3/kv/txn", txn)
        guard reply["succeeded"] as? Bool == true else {
            _ = try? await client.post("/v3/lease/revoke", ["ID": String(leaseID)])
            return nil
        }
        let revision = UInt64(max(0, EtcdClient.int(reply["header"] as? EtcdClient.Object, "revision")))
        stored.modifyIndex = revision
        if stored.createIndex == 0 { stored.createIndex = revision }
        return stored
    }

    public func refresh(service: String, instanceID: String) async throws -> Bool {
        let reply = try await client.post("/v3/kv/range", ["key": EtcdClient.b64(key(service, instanceID))])
        guard let kv = (reply["kvs"] as? [EtcdClient.Object])?.first else { return false }
        let lease = EtcdClient.int(kv, "lease")
        guard lease != 0 else { return false }
        let alive = try await client.post("/v3/lease/keepalive", ["ID": String(lease)])
        return EtcdClient.int(alive["result"] as? EtcdClient.Object, "TTL") > 0
    }

    public func remove(service: String, instanceID: String) async throws -> Bool {
        let reply = try await client.post("/v3/kv/deleterange", ["key": EtcdClient.b64(key(service, instanceID)), "prev_kv": true])
        guard EtcdClient.int(reply, "deleted") > 0 else { return false }
        if let lease = (reply["prev_kvs"] as? [EtcdClient.Object])?.first.map({ EtcdClient.int($0, "lease") }), lease != 0 {
            _ = try? await client.post("/v3/lease/revoke", ["ID": String(lease)])
        }
        return true
    }

    /// Watches the prefix; after a broken stream it resumes from the revision after the last one
    /// seen (or from now, when that was compacted away) and reports a change so the backend
    /// re-reads whatever it may have missed.
    public func notifications(_ changed: @escaping @Sendable () -> Void) async {
        var lastRevision: Int64 = 0
        var failures = 0
        while !Task.isCancelled {
            var create: EtcdClient.Object = ["key": EtcdClient.b64(prefix), "range_end": EtcdClient.prefixEnd(prefix)]
            if lastRevision > 0 { create["start_revision"] = String(lastRevision + 1) }
            do {
                try await client.stream("/v3/watch", ["create_request": create]) { line in
                    guard let result = line["result"] as? EtcdClient.Object else {
                        throw EtcdError.unexpected("watch line without result")
                    }
                    if result["created"] as? Bool == true {
                        failures = 0
                        changed()
                    }
                    if EtcdClient.int(result, "compact_revision") > 0 || result["canceled"] as? Bool == true {
                        lastRevision = 0
                        throw EtcdError.unexpected("watch cancelled (compacted)")
                    }
                    if let events = result["events"] as? [EtcdClient.Object], !events.isEmpty {
                        for e in events {
                            lastRevision = max(lastRevision, EtcdClient.int(e["kv"] as? EtcdClient.Object, "mod_revision"))
                        }
                        lastRevision = max(lastRevision, EtcdClient.int(result["header"] as? EtcdClient.Object, "revision"))
                        changed()
                    }
                }
            } catch {
                if Task.isCancelled { return }
                failures += 1
                if failures == 1 { logger.warning("etcd watch on \(displayName) broke; resuming: \(error)") }
            }
            try? await Task.sleep(for: min(.milliseconds(50) * (1 << min(failures, 6)), .seconds(2)))
        }
    }
}

/// The etcd backend: ``StoreBackend`` over an ``EtcdStore``.
public typealias EtcdBackend = StoreBackend<EtcdStore>

extension StoreBackend where Store == EtcdStore {
    /// A backend for `etcd://host:port[,host:port…][/prefix]`.
    public convenience init(etcdURL: String, resyncInterval: Duration = .seconds(5), logger: Logger) throws {
        let configuration = try EtcdConfiguration(url: etcdURL)
        self.init(store: EtcdStore(configuration: configuration, logger: logger), resyncInterval: resyncInterval, logger: logger)
    }
}
