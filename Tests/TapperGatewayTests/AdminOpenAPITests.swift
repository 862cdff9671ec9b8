import Foundation
import Testing
import TapperGateway
import TapperTesting

/// `GET /_tapper/openapi.json` describes the gateway's admin endpoints; these tests keep the
/// document and the responder in step (schemathesis, in `scripts/api-fuzz`, fuzzes the rest).
@Suite struct AdminOpenAPITests {
    @Test func everyDocumentedPathAnswersAndOnlyGetAndHead() async throws {
        try await withLiveGateway { gw in
            let reply = try await httpRequest(.GET, gw.url + "/_tapper/openapi.json")
            #expect(reply.status == 200)
            #expect(reply.headers.first(name: "Content-Type")?.hasPrefix("application/json") == true)
            let doc = try reply.json()
            #expect(doc["openapi"] as? String == "3.1.0")
            let paths = try #require(doc["paths"] as? [String: [String: Any]])
            #expect(
                Set(paths.keys) == [
                    "/health", "/_tapper/routes", "/_tapper/status", "/_tapper/metrics", "/_tapper/traffic", "/_tapper/explain", "/_tapper/dashboard",
                    "/_tapper/openapi.json",
                ])
            for (documented, item) in paths {
                let path = documented == "/_tapper/explain" ? documented + "?method=GET&path=/" : documented
                #expect(Set(item.keys) == ["get"], "\(path) documents \(item.keys.sorted())")
                #expect(try await httpRequest(.GET, gw.url + path).status == 200, "GET \(path)")
                #expect(try await httpRequest(.HEAD, gw.url + path).status == 200, "HEAD \(path)")
                for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE"] {
                    let refused = try await httpRequest(.init(rawValue: method), gw.url + path)
                    #expect(refused.status == 405, "\(method) \(path): \(refused.status)")
                    #expect(refused.headers.first(name: "Allow") == "GET, HEAD", "\(method) \(path)")
                }
            }
        }
    }

    @Test func theDocumentStatesWhetherTheAdminEndpointsNeedAToken() async throws {
        @Sendable func security(_ doc: [String: Any], _ path: String) -> [[String: Any]]? {
            (((doc["paths"] as? [String: Any])?[path] as? [String: Any])?["get"] as? [String: Any])?["security"] as? [[String: Any]]
        }
        try await withLiveGateway { gw in
            let doc = try await httpRequest(.GET, gw.url + "/_tapper/openapi.json").json()
            #expect(security(doc, "/_tapper/status")?.isEmpty == true)
        }
        var config = GatewayConfiguration()
        config.adminToken = { "admin-secret" }
        try await withLiveGateway(configuration: config) { gw in
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/openapi.json").status == 401)
            let doc = try await httpRequest(.GET, gw.url + "/_tapper/openapi.json", headers: [("Authorization", "Bearer admin-secret")]).json()
            #expect(security(doc, "/_tapper/status")?.first?["bearer"] != nil)
            #expect(security(doc, "/health")?.isEmpty == true)
            #expect(try await httpRequest(.GET, gw.url + "/health").status == 200)
        }
    }
}
