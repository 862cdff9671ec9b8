import Foundation
import Logging
import Testing
import TapperCore
import TapperGateway
import TapperTesting

/// The gateway's face: `/openapi.json`, `/docs` and its assets, `/_tapper/dashboard`,
/// `/_tapper/traffic` and `/_tapper/explain`, over real sockets.
@Suite struct DocsAndDashboardTests {
    func paths(_ gw: LiveGateway) async throws -> [String: Any] {
        let reply = try await httpRequest(.GET, gw.url + "/openapi.json")
        #expect(reply.status == 200)
        return try reply.json()["paths"] as? [String: Any] ?? [:]
    }

    @Test func theMergedDocumentFollowsRegistrationsWithinASecond() async throws {
        let upstream = try await FakeUpstream(name: "legacy")
        defer { Task { await upstream.stop() } }
        try await withLiveGateway(extraServices: { [OpenAPICollector(gateway: $0, logger: .init(label: "test"))] }) { gw throws in
            #expect(try await paths(gw).isEmpty)
            try await gw.register(
                "legacy", "a", ServiceRegistration(url: upstream.url, prefix: "/old", routes: [RouteSpec(methods: ["GET"], path: "/things/{id:int}")]))
            // register returns once the gateway routes with the new catalog: the clock starts there.
            let started = ContinuousClock.now
            try await poll("the new service's route in /openapi.json", timeout: .seconds(1)) { try await paths(gw)["/old/things/{id}"] != nil }
            #expect(ContinuousClock.now - started < .seconds(1))
            let doc = try await httpRequest(.GET, gw.url + "/openapi.json").json()
            #expect((doc["servers"] as? [[String: Any]])?.first?["url"] as? String == "/")
            try await gw.deregister("legacy", "a")
            try await poll("the route leaves /openapi.json", timeout: .seconds(1)) { try await paths(gw).isEmpty }
        }
    }

    @Test func swaggerUIAndItsAssetsComeFromTheBinary() async throws {
        try await withLiveGateway { gw throws in
            let page = try await httpRequest(.GET, gw.url + "/docs")
            #expect(page.status == 200)
            #expect(page.headers.first(name: "Content-Type")?.hasPrefix("text/html") == true)
            #expect(page.text.contains(#"url: "/openapi.json""#))
            #expect(page.text.contains("/docs/swagger-ui-bundle.js"))
            #expect(!page.text.contains("http"), "no CDN: nothing but the gateway's own paths")
            let js = try await httpRequest(.GET, gw.url + "/docs/swagger-ui-bundle.js")
            #expect(js.status == 200)
            #expect(js.body.count > 1_000_000)
            #expect(js.text.contains("SwaggerUIBundle"))
            #expect(try await httpRequest(.HEAD, gw.url + "/docs/swagger-ui.css").status == 200)
            #expect(try await httpRequest(.GET, gw.url + "/docs/LICENSE").text.contains("Apache License"))
            #expect(try await httpRequest(.GET, gw.url + "/docs/nothing.js").status == 404)
            #expect(try await httpRequest(.POST, gw.url + "/docs").status == 405)
            // A path that merely starts like the docs is routed as usual.
            #expect(try await httpRequest(.GET, gw.url + "/docsx").status == 404)
            #expect(try await httpRequest(.GET, gw.url + "/openapi.jsonx").errorMessage?.contains("no service has a route") == true)
        }
    }

    @Test func theDocsPathsMoveOrTurnOff() async throws {
        var moved = GatewayConfiguration()
        moved.docsPath = "/api-docs"
        moved.openapiPath = "/api-docs.json"
        try await withLiveGateway(configuration: moved) { gw throws in
            #expect(try await httpRequest(.GET, gw.url + "/api-docs").text.contains(#"url: "/api-docs.json""#))
            #expect(try await httpRequest(.GET, gw.url + "/api-docs.json").status == 200)
            #expect(try await httpRequest(.GET, gw.url + "/docs").status == 404)
            // A service's route under the docs paths is shadowed, and /_tapper/routes says so.
            let upstream = try await FakeUpstream(name: "shadowed")
            try await gw.register("shadowed", "a", ServiceRegistration(url: upstream.url, routes: [RouteSpec(methods: ["GET"], path: "/api-docs")]))
            #expect(try await httpRequest(.GET, gw.url + "/api-docs").text.contains("swagger-ui"))
            let conflicts = try await httpRequest(.GET, gw.url + "/_tapper/routes").json()["conflicts"] as? [String]
            #expect(conflicts?.contains { $0.hasPrefix("GET /api-docs: answered by the gateway") } == true, "\(conflicts ?? [])")
            await upstream.stop()
        }
        var off = GatewayConfiguration()
        off.docsPath = nil
        off.openapiPath = nil
        try await withLiveGateway(configuration: off) { gw throws in
            #expect(try await httpRequest(.GET, gw.url + "/docs").status == 404)
            #expect(try await httpRequest(.GET, gw.url + "/openapi.json").status == 404)
            let upstream = try await FakeUpstream(name: "docs-owner")
            try await gw.register("docs-owner", "a", ServiceRegistration(url: upstream.url, routes: [RouteSpec(methods: ["GET"], path: "/docs")]))
            #expect(try await httpRequest(.GET, gw.url + "/docs").status == 200, "with --no-docs a service may own /docs")
            await upstream.stop()
        }
    }

    @Test func trafficCountsRequestsPerRouteAndKeepsRecent5xx() async throws {
        let upstream = try await FakeUpstream(name: "users")
        defer { Task { await upstream.stop() } }
        try await withLiveGateway { gw throws in
            try await gw.register("users", "a", ServiceRegistration(url: upstream.url, routes: [RouteSpec(methods: ["GET"], path: "/users/{id}")]))
            for i in 0..<5 { #expect(try await httpRequest(.GET, gw.url + "/users/\(i)").status == 200) }
            upstream.forceStatus(500)
            #expect(try await httpRequest(.GET, gw.url + "/users/9").status == 500)
            let body = try await httpRequest(.GET, gw.url + "/_tapper/traffic").json()
            let routes = try #require(body["routes"] as? [[String: Any]])
            let route = try #require(routes.first { $0["route"] as? String == "/users/{id}" })
            #expect(route["service"] as? String == "users")
            #expect(route["method"] as? String == "GET")
            #expect(route["requests_total"] as? Int == 6)
            #expect(route["errors_total"] as? Int == 1)
            #expect((route["requests_per_second"] as? Double ?? 0) > 0)
            #expect((route["p99_ms"] as? Double ?? 0) > 0)
            let errors = try #require(body["recent_errors"] as? [[String: Any]])
            #expect(errors.first?["path"] as? String == "/users/9")
            #expect(errors.first?["status"] as? Int == 500)
            #expect(errors.first?["instance"] as? String == "a")
        }
    }

    @Test func explainGivesRouteTestsAnswerAndRefusesBadQueries() async throws {
        let upstream = try await FakeUpstream(name: "users")
        defer { Task { await upstream.stop() } }
        try await withLiveGateway { gw throws in
            try await gw.register("users", "a", ServiceRegistration(url: upstream.url, version: "1.2.0", routes: [RouteSpec(methods: ["GET"], path: "/users/{id:int}")]))
            let reply = try await httpRequest(.GET, gw.url + "/_tapper/explain?method=get&path=%2Fusers%2F42%3Fverbose%3D1")
            #expect(reply.status == 200)
            let report = try JSONDecoder().decode(RouteReport.self, from: reply.body)
            let expected = RouteReport(
                method: "GET", path: "/users/42?verbose=1", catalog: gw.gateway.state.snapshot.catalog, table: gw.gateway.state.snapshot.table,
                states: ["users": ["a": "healthy"]])
            #expect(report == expected)
            #expect(report.service == "users")
            #expect(report.parameters == ["id": "42"])
            let missing = try await httpRequest(.GET, gw.url + "/_tapper/explain?method=GET&path=/nope").json()
            #expect(missing["result"] as? String == "not_found")
            for bad in ["", "?path=/x", "?method=GET", "?method=GET&path=x", "?method=G%20T&path=/x", "?method=GET&path=%zz"] {
                let refused = try await httpRequest(.GET, gw.url + "/_tapper/explain" + bad)
                #expect(refused.status == 400, "\(bad)")
                #expect(refused.errorMessage?.isEmpty == false)
            }
        }
    }

    @Test func theDashboardIsBehindTheAdminTokenAndTakesItAsBasicPassword() async throws {
        var config = GatewayConfiguration()
        config.adminToken = { "admin-secret" }
        try await withLiveGateway(configuration: config) { gw throws in
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/dashboard").status == 401)
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/traffic").status == 401)
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/explain?method=GET&path=/").status == 401)
            let basic = "Basic " + Data("me:admin-secret".utf8).base64EncodedString()
            let page = try await httpRequest(.GET, gw.url + "/_tapper/dashboard", headers: [("Authorization", basic)])
            #expect(page.status == 200)
            #expect(page.text.contains("/status"))
            #expect(!page.text.contains("<script src"), "self-contained: no external script")
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/status", headers: [("Authorization", "Basic " + Data("me:wrong".utf8).base64EncodedString())]).status == 401)
            // The docs are public, like the routes they describe.
            #expect(try await httpRequest(.GET, gw.url + "/openapi.json").status == 200)
        }
        var separate = GatewayConfiguration()
        separate.adminPort = 0
        try await withLiveGateway(configuration: separate) { gw throws in
            let admin = try #require(gw.adminURL)
            #expect(try await httpRequest(.GET, gw.url + "/_tapper/dashboard").status == 404)
            #expect(try await httpRequest(.GET, admin + "/_tapper/dashboard").status == 200)
            #expect(try await httpRequest(.GET, admin + "/docs").status == 404, "docs live where requests are proxied")
            #expect(try await httpRequest(.GET, gw.url + "/docs").status == 200)
        }
    }
}
