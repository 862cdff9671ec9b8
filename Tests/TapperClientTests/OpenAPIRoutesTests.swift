import Foundation
import Testing
import TapperClient
import TapperCore

@Suite struct OpenAPIRoutesTests {
    @Test func operationsWithoutSecurityOrMarkedPublicBecomePublicRoutes() throws {
        let doc = """
            {"openapi": "3.1.0", "security": [{"bearer": []}], "paths": {
              "/items/{id}": {"get": {"security": []}, "delete": {}},
              "/login": {"post": {"x-tapper-public": true}},
              "/admin": {"get": {"security": [{"bearer": []}]}, "put": {"x-tapper-public": false, "security": []}},
              "/health": {"get": {}}
            }}
            """
        let routes = try OpenAPIRoutes.parse(Data(doc.utf8), skipping: ["/health"])
        #expect(
            routes == [
                RouteSpec(methods: ["GET", "PUT"], path: "/admin"),
                RouteSpec(methods: ["DELETE"], path: "/items/{id}"),
                RouteSpec(methods: ["GET"], path: "/items/{id}", isPublic: true),
                RouteSpec(methods: ["POST"], path: "/login", isPublic: true),
            ])
    }
}
