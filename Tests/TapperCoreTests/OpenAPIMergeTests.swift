import Testing
import TapperCore

@Suite struct JSONValueTests {
    @Test func parsesAndSerializesKeepingOrderAndNumbers() throws {
        let text = #"{"b":1,"a":[true,false,null,1.50,-2e3],"s":"q\"\\\n\u00e9\ud83d\ude00"}"#
        let v = try JSONValue(parsing: text)
        #expect(v.members?.map(\.key) == ["b", "a", "s"])
        #expect(v["a"] == [true, false, .null, .number("1.50"), .number("-2e3")])
        #expect(v["s"]?.stringValue == "q\"\\\né😀")
        #expect(v.serialized() == #"{"b":1,"a":[true,false,null,1.50,-2e3],"s":"q\"\\\né😀"}"#)
        #expect(try JSONValue(parsing: v.serialized()) == v)
    }

    @Test func refusesWhatIsNotJSON() {
        for bad in ["", "{", "[1,]", "{\"a\"}", "01", "1.", "\"\u{01}\"", "nul", "{} x", "\"\\x\""] {
            #expect(throws: JSONValue.ParseError.self, "\(bad)") { try JSONValue(parsing: bad) }
        }
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: deep) }
    }
}

@Suite struct OpenAPIMergeTests {
    /// A FastAPI-like document: one path with a body schema, a component referencing another.
    func usersDocument() throws -> JSONValue {
        try JSONValue(
            parsing: #"""
                {"openapi":"3.1.0","info":{"title":"users","version":"1.0.0"},
                 "servers":[{"url":"http://10.0.0.5:8002"}],
                 "security":[{"key":[]}],
                 "paths":{
                   "/users/{user_id}":{"get":{"operationId":"get_user","tags":["users"],"parameters":[{"name":"user_id","in":"path","required":true,"schema":{"type":"integer"}}],
                     "responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/User"}}}}}}},
                   "/health":{"get":{"operationId":"health","responses":{"200":{"description":"ok"}}}},
                   "/items":{"post":{"operationId":"create_item","security":[],"responses":{"200":{"description":"ok"}}}}
                 },
                 "components":{"schemas":{"User":{"type":"object","properties":{"address":{"$ref":"#/components/schemas/Address"}}},"Address":{"type":"object"}},
                   "securitySchemes":{"key":{"type":"apiKey","in":"header","name":"X-API-Key"}}}}
                """#)
    }

    func ordersDocument() throws -> JSONValue {
        try JSONValue(
            parsing: #"""
                {"openapi":"3.1.0","info":{"title":"orders","version":"2.0.0"},
                 "paths":{"/orders/{order_id}":{"get":{"operationId":"get_user","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/User"}}}}}}}},
                 "components":{"schemas":{"User":{"type":"string"}}}}
                """#)
    }

    func users(prefix: String = "") throws -> OpenAPIMerge.Source {
        OpenAPIMerge.Source(
            service: "users", prefix: prefix, description: "User management", versions: ["1.0.0"],
            routes: [RouteSpec(methods: ["GET"], path: "/users/{user_id:int}"), RouteSpec(methods: ["POST"], path: "/items")], document: try usersDocument())
    }

    func orders() throws -> OpenAPIMerge.Source {
        OpenAPIMerge.Source(service: "orders", prefix: "/shop", versions: ["2.0.0"], routes: [RouteSpec(methods: ["GET"], path: "/orders/{order_id}")], document: try ordersDocument())
    }

    @Test func pathsGetThePrefixAndOnlyRoutedOperationsStay() throws {
        let doc = OpenAPIMerge.merge([try users(prefix: "/api"), try orders()]).document
        #expect(doc["openapi"] == "3.1.0")
        #expect(doc["servers"] == [["url": "/"]])
        #expect(doc["paths"]?.members?.map(\.key) == ["/shop/orders/{order_id}", "/api/users/{user_id}", "/api/items"], "services by name; /health is not a registered route")
        #expect(doc["paths"]?["/api/users/{user_id}"]?["get"]?["servers"] == nil)
    }

    @Test func operationIDsAndComponentNamesAreMadeUniquePerServiceWithTheirRefs() throws {
        let doc = OpenAPIMerge.merge([try users(), try orders()]).document
        let userGet = try #require(doc["paths"]?["/users/{user_id}"]?["get"])
        let orderGet = try #require(doc["paths"]?["/shop/orders/{order_id}"]?["get"])
        #expect(userGet["operationId"] == "users_get_user")
        #expect(orderGet["operationId"] == "orders_get_user")
        let userRef = userGet["responses"]?["200"]?["content"]?["application/json"]?["schema"]?["$ref"]
        #expect(userRef == "#/components/schemas/users.User")
        #expect(orderGet["responses"]?["200"]?["content"]?["application/json"]?["schema"]?["$ref"] == "#/components/schemas/orders.User")
        let schemas = try #require(doc["components"]?["schemas"]?.members?.map(\.key))
        #expect(Set(schemas) == ["users.User", "users.Address", "orders.User"])
        #expect(doc["components"]?["schemas"]?["users.User"]?["properties"]?["address"]?["$ref"] == "#/components/schemas/users.Address")
        // The document-wide security requirement moves onto the service's operations, renamed;
        // an operation's own (empty: public) stays.
        #expect(userGet["security"] == [["users.key": []]])
        #expect(doc["paths"]?["/items"]?["post"]?["security"] == [])
        #expect(doc["components"]?["securitySchemes"]?["users.key"] != nil)
    }

    @Test func operationsAreTaggedPerService() throws {
        let doc = OpenAPIMerge.merge([try users(), try orders()]).document
        #expect(doc["paths"]?["/users/{user_id}"]?["get"]?["tags"] == ["users"])
        #expect(doc["paths"]?["/shop/orders/{order_id}"]?["get"]?["tags"] == ["orders"])
        #expect(doc["tags"] == [["name": "orders", "description": "(version 2.0.0)"], ["name": "users", "description": "User management (version 1.0.0)"]])
    }

    @Test func aServiceWithoutADocumentContributesBareOperations() {
        let bare = OpenAPIMerge.Source(
            service: "legacy", prefix: "/old", routes: [RouteSpec(methods: ["GET", "DELETE"], path: "/things/{id:int}"), RouteSpec(methods: [], path: "/any"), RouteSpec(methods: ["GET"], path: "/ws", isWebSocket: true)])
        let doc = OpenAPIMerge.merge([bare]).document
        let get = doc["paths"]?["/old/things/{id}"]?["get"]
        #expect(get?["operationId"] == "legacy_get_old_things__id_")
        #expect(get?["parameters"] == [["name": "id", "in": "path", "required": true, "schema": ["type": "integer"]]])
        #expect(get?["responses"]?["default"] != nil)
        #expect(doc["paths"]?["/old/things/{id}"]?["delete"] != nil)
        #expect(doc["paths"]?["/old/any"]?.members?.map(\.key) == ["get", "post", "put", "patch", "delete"])
        #expect(doc["paths"]?["/old/ws"] == nil, "WebSocket routes are not OpenAPI operations")
        // A Swagger 2.0 document is not merged: the routes stand in.
        var swagger = bare
        swagger.document = ["swagger": "2.0", "paths": ["/things/{id}": ["get": ["operationId": "x"]]]]
        #expect(OpenAPIMerge.merge([swagger]).document["paths"]?["/old/things/{id}"]?["get"]?["operationId"] == "legacy_get_old_things__id_")
    }

    @Test func aRouteTwoServicesClaimGoesToItsOwnerAndTheOtherIsReported() throws {
        let a = OpenAPIMerge.Source(service: "alpha", routes: [RouteSpec(methods: ["GET"], path: "/same/{x}")])
        let b = OpenAPIMerge.Source(service: "beta", routes: [RouteSpec(methods: ["GET"], path: "/same/{y}"), RouteSpec(methods: ["POST"], path: "/same/{y}")])
        // No owner known: the first by name keeps it, deterministically, whatever the input order.
        let first = OpenAPIMerge.merge([b, a])
        #expect(first.document["paths"]?["/same/{x}"]?["get"]?["tags"] == ["alpha"])
        #expect(first.conflicts.map(\.refused) == ["beta", "beta"])
        #expect(first.document["paths"]?["/same/{y}"] == nil, "the same template spelled otherwise would be an invalid document")
        #expect(first.document["x-tapper-conflicts"]?.arrayValue?.count == 2)
        // The route table says beta owns GET: the document agrees with routing.
        let owned = OpenAPIMerge.merge([a, b], owners: [OpenAPIMerge.ownerKey(method: "GET", shape: "/same/{}"): "beta"])
        #expect(owned.document["paths"]?["/same/{y}"]?["get"]?["tags"] == ["beta"])
        #expect(owned.document["paths"]?["/same/{y}"]?["post"]?["tags"] == ["beta"])
        #expect(owned.document["paths"]?["/same/{x}"] == nil)
        #expect(owned.conflicts == [OpenAPIMerge.Conflict(method: "get", path: "/same/{x}", owner: "beta", refused: "alpha")])
    }

    @Test func servicesComingAndGoingChangeTheDocumentAndNothingElse() throws {
        let both = OpenAPIMerge.merge([try users(), try orders()]).document
        let one = OpenAPIMerge.merge([try users()]).document
        let none = OpenAPIMerge.merge([]).document
        #expect(both["paths"]?["/shop/orders/{order_id}"] != nil)
        #expect(one["paths"]?["/shop/orders/{order_id}"] == nil)
        #expect(one["components"]?["schemas"]?["orders.User"] == nil)
        #expect(one["paths"]?["/users/{user_id}"] == both["paths"]?["/users/{user_id}"], "a service's part does not depend on its neighbours")
        #expect(none["paths"] == .object([]))
        #expect(none["tags"] == [])
        // Same input, same bytes (the gateway caches by them).
        #expect(OpenAPIMerge.merge([try orders(), try users()]).document.serialized() == both.serialized())
    }

    @Test func serverURLIsTheGateway() throws {
        let doc = OpenAPIMerge.merge([try users()], serverURL: "https://api.example.com").document
        #expect(doc["servers"] == [["url": "https://api.example.com"]])
    }
}

@Suite struct DashboardHelpersTests {
    @Test func trafficWindowRatesAndPercentiles() {
        var t = TrafficWindow.Totals()
        for ms in [1, 1, 1, 1, 1, 1, 1, 1, 1, 100] {
            t.requests += 1
            t.nanoseconds += UInt64(ms) * 1_000_000
            t.buckets[TrafficWindow.bucket(nanoseconds: Int64(ms) * 1_000_000)] += 1
        }
        t.errors = 2
        let r = TrafficWindow.rates(t, seconds: 2)
        #expect(r.requestsPerSecond == 5)
        #expect(r.errorsPerSecond == 1)
        #expect(r.meanMilliseconds == 10.9)
        #expect(r.p50Milliseconds == 1.024, "1 ms falls in [512, 1024) µs")
        #expect(r.p99Milliseconds == 131.072)
        var later = t
        later.requests += 4
        #expect(later.since(t).requests == 4)
        #expect(TrafficWindow.rates(TrafficWindow.Totals(), seconds: 1).p50Milliseconds == nil)
        #expect(TrafficWindow.bucket(nanoseconds: -5) == 0)
        #expect(TrafficWindow.bucket(nanoseconds: Int64.max) == TrafficWindow.bucketCount - 1)
    }

    @Test func queryStringDecodes() {
        #expect(QueryString.parse("?method=GET&path=%2Fusers%2F1+x&path=second") == ["method": "GET", "path": "/users/1 x"])
        #expect(QueryString.parse("flag&=v") == ["flag": "", "": "v"])
        #expect(QueryString.parse("path=%zz") == nil)
    }

    @Test func adminCredentialTakesBearerOrBasicPassword() {
        #expect(AdminCredential.token(fromAuthorization: "Bearer s3cret") == "s3cret")
        // base64("admin:s3cret:x")
        #expect(AdminCredential.token(fromAuthorization: "Basic YWRtaW46czNjcmV0Ong=") == "s3cret:x")
        #expect(AdminCredential.token(fromAuthorization: "basic OnMzY3JldA==") == "s3cret", "no user name")
        #expect(AdminCredential.token(fromAuthorization: "Basic YWRtaW4=") == nil, "no colon")
        #expect(AdminCredential.token(fromAuthorization: "Basic YWRtaW46") == nil, "empty password")
        #expect(AdminCredential.token(fromAuthorization: "Basic !!!") == nil)
        #expect(AdminCredential.token(fromAuthorization: "Digest x") == nil)
    }
}
