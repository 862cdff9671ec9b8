import Foundation
import Testing
import TapperCore

/// The routing cases shared with the Python gateway (`Tests/Fixtures/routing-cases.json`, also run
/// by `clients/python/tests/test_routing_cases.py`): one file, so both gateways keep one meaning
/// of "which service owns this request".
@Suite struct RoutingCasesTests {
    struct File: Decodable {
        var cases: [Case]
    }

    struct Case: Decodable {
        var name: String
        var instances: [Instance]
        var conflicts: [ExpectedConflict]?
        var requests: [Request]
    }

    struct Instance: Decodable {
        var service: String
        var prefix: String?
        var routes: [Route]
    }

    struct Route: Decodable {
        var methods: [String]
        var path: String
    }

    struct ExpectedConflict: Decodable, Equatable, CustomStringConvertible {
        var template: String
        var method: String
        var owner: String
        var refused: String
        var description: String { "\(method) \(template) of \(refused) (owned by \(owner))" }
    }

    struct Request: Decodable {
        var method: String
        var path: String
        var status: Int
        var service: String?
        var route: String?
        var params: [String: String]?
        var allow: [String]?
    }

    /// The repository root, found from this file's path (`Tests/TapperCoreTests/...`).
    static let fixture: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/routing-cases.json")

    static func load() throws -> [Case] {
        try JSONDecoder().decode(File.self, from: Data(contentsOf: fixture)).cases
    }

    static func table(for c: Case) throws -> RouteTable {
        var records: [InstanceRecord] = []
        for (i, instance) in c.instances.enumerated() {
            var registration = ServiceRegistration(
                url: "http://127.0.0.1:\(9000 + i)", prefix: instance.prefix ?? "",
                routes: instance.routes.map { RouteSpec(methods: $0.methods, path: $0.path) }
            )
            try registration.validate()
            let index = UInt64(i + 1)
            records.append(InstanceRecord(service: instance.service, instanceID: "i\(i + 1)", registration: registration, createIndex: index, modifyIndex: index))
        }
        return RouteTable(snapshot: CatalogSnapshot(index: UInt64(records.count), instances: records))
    }

    /// What the gateway answers for a request, as far as routing decides it.
    static func outcome(_ table: RouteTable, method: String, path: String) -> (status: Int, service: String?, route: String?, params: [String: String], allow: [String]) {
        if PathSafety.check(path) != nil { return (400, nil, nil, [:], []) }
        switch table.resolve(method: method, path: path) {
        case .notFound:
            return (404, nil, nil, [:], [])
        case .methodNotAllowed(let allowed):
            return (405, nil, nil, [:], allowed)
        case .matched(let m):
            var params: [String: String] = [:]
            for p in m.parameters { params[p.name] = p.value }
            return (200, m.entry.service, m.entry.template.raw, params, [])
        }
    }

    @Test func theFixtureIsThereAndNotEmpty() throws {
        let cases = try Self.load()
        #expect(cases.count >= 10)
        #expect(cases.reduce(0) { $0 + $1.requests.count } >= 60)
    }

    @Test(arguments: (try? RoutingCasesTests.load().map(\.name)) ?? [])
    func sharedRoutingCase(_ name: String) throws {
        let c = try #require(try Self.load().first(where: { $0.name == name }))
        let table = try Self.table(for: c)
        let conflicts = table.conflicts.map { ExpectedConflict(template: $0.template, method: $0.method, owner: $0.owner, refused: $0.refused) }
        #expect(conflicts == (c.conflicts ?? []), "conflicts of case '\(name)'")
        for r in c.requests {
            let got = Self.outcome(table, method: r.method, path: r.path)
            let what = "\(name): \(r.method) \(r.path)"
            #expect(got.status == r.status, "\(what): status")
            switch r.status {
            case 200:
                #expect(got.service == r.service, "\(what): service")
                #expect(got.route == r.route, "\(what): route")
                #expect(got.params == (r.params ?? [:]), "\(what): params")
            case 405:
                #expect(got.allow == (r.allow ?? []), "\(what): Allow")
            default:
                break
            }
        }
    }
}
