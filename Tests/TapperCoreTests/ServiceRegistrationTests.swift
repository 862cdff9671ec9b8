import Foundation
import Testing
import TapperCore

@Suite struct ServiceRegistrationTests {
    func field(_ mutate: (inout ServiceRegistration) -> Void) -> String? {
        var r = ServiceRegistration(url: "http://127.0.0.1:9000", routes: [RouteSpec(methods: ["get"], path: "/a")])
        mutate(&r)
        do {
            try r.validate()
            return nil
        } catch {
            return error.field
        }
    }

    @Test func validRegistrationNormalisesMethods() throws {
        var r = ServiceRegistration(url: "http://127.0.0.1:9000/", routes: [RouteSpec(methods: ["post", "get", "GET"], path: "/a")])
        try r.validate()
        #expect(r.routes[0].methods == ["GET", "POST"])
    }

    @Test func eachBadFieldIsNamed() {
        #expect(field { $0.url = "ftp://x" } == "url")
        #expect(field { $0.url = "http://x:0" } == "url")
        #expect(field { $0.url = "http://x:80/path" } == "url")
        #expect(field { $0.url = "http://u:p@x" } == "url")
        #expect(field { $0.version = "1\r\nX-Evil: 1" } == "version")
        #expect(field { $0.description = "a\nb" } == "description")
        #expect(field { $0.prefix = "api" } == "prefix")
        #expect(field { $0.prefix = "/api/" } == "prefix")
        #expect(field { $0.prefix = "/{x}" } == "prefix")
        #expect(field { $0.healthEndpoint = "health" } == "health_endpoint")
        #expect(field { $0.tags = ["ok", "bad\r"] } == "tags[1]")
        #expect(field { $0.ttlSeconds = 0 } == "ttl_seconds")
        #expect(field { $0.ttlSeconds = .infinity } == "ttl_seconds")
        #expect(field { $0.weight = 0 } == "weight")
        #expect(field { $0.trafficWeight = 101 } == "traffic_weight")
        #expect(field { $0.trafficWeight = -1 } == "traffic_weight")
        #expect(field { $0.trafficWeight = .nan } == "traffic_weight")
        #expect(field { $0.openapiPath = "openapi.json" } == "openapi_path")
        #expect(field { $0.openapiPath = "//evil.example/openapi.json" } == "openapi_path")
        #expect(field { $0.openapiPath = "/a b" } == "openapi_path")
        #expect(field { $0.openapiPath = "/x\r\n" } == "openapi_path")
        #expect(field { $0.openapiPath = "/openapi.json" } == nil)
        #expect(field { $0.trafficWeight = 0 } == nil)
        #expect(field { $0.metadata = ["k": "v\n"] } == "metadata.k")
        #expect(field { $0.routes = [RouteSpec(path: "/ok"), RouteSpec(path: "/{x")] } == "routes[1].path")
        #expect(field { $0.routes = [RouteSpec(methods: ["GE T"], path: "/ok")] } == "routes[0].methods[0]")
        #expect(field { $0.routes = [RouteSpec(path: "/health")] } == "routes[0].path")
        #expect(field { $0.routes = [RouteSpec(path: "/_tapper/x")] } == "routes[0].path")
        #expect(field { $0.routes = [RouteSpec(path: "/a"), RouteSpec(path: "/a")] } == "routes[1]")
        #expect(field { $0.loadBalancer = "round robin" } == "load_balancer")
    }

    @Test func rateLimitsOnServicesAndRoutes() throws {
        let json = #"{"url":"http://127.0.0.1:9000","rate_limit":"100/s","routes":[{"path":"/search","methods":["GET"],"rate_limit":"10/m"}]}"#
        let decoded = try JSONDecoder().decode(ServiceRegistration.self, from: Data(json.utf8))
        #expect(decoded.rateLimit?.description == "100/s" && decoded.routes[0].rateLimit?.description == "10/m")
        let encoded = String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self)
        #expect(encoded.contains(#""rate_limit":"100\/s""#) && encoded.contains(#""rate_limit":"10\/m""#))
        for bad in [#"{"url":"http://127.0.0.1:9000","rate_limit":"fast"}"#, #"{"url":"http://127.0.0.1:9000","rate_limit":5}"#] {
            #expect(throws: (any Error).self) { try JSONDecoder().decode(ServiceRegistration.self, from: Data(bad.utf8)) }
        }
        do {
            _ = try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url":"http://127.0.0.1:9000","rate_limit":"0/s"}"#.utf8))
            Issue.record("0/s was accepted")
        } catch let e as FieldError {
            #expect(e.field == "rate_limit")
        }
        let cli = try RouteSpec(parsingCLI: "GET /search 10/s")
        #expect(cli.methods == ["GET"] && cli.path == "/search" && cli.rateLimit?.description == "10/s")
        #expect(try RouteSpec(parsingCLI: "WS /ws 5/m").rateLimit?.description == "5/m")
        #expect(throws: FieldError.self) { try RouteSpec(parsingCLI: "GET /search often") }
        #expect(RateLimit.stricter(try RateLimit(parsing: "100/s"), try RateLimit(parsing: "60/m"))?.description == "60/m")
        #expect(RateLimit.stricter(nil, try RateLimit(parsing: "1/h"))?.description == "1/h")
    }

    @Test func trafficWeightTravelsInJSONOnlyWhenSet() throws {
        let decoded = try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url":"http://127.0.0.1:9000","traffic_weight":12.5}"#.utf8))
        #expect(decoded.trafficWeight == 12.5)
        #expect(String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self).contains(#""traffic_weight":12.5"#))
        let plain = ServiceRegistration(url: "http://127.0.0.1:9000")
        #expect(!String(decoding: try JSONEncoder().encode(plain), as: UTF8.self).contains("traffic_weight"))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url":"http://127.0.0.1:9000","traffic_weight":"10"}"#.utf8))
        }
    }

    @Test func protocolTravelsInJSONOnlyWhenSetAndSurvivesTheStores() throws {
        let decoded = try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url":"http://127.0.0.1:9000","protocol":"h2c"}"#.utf8))
        #expect(decoded.upstreamProtocol == .h2c)
        let encoded = try JSONEncoder().encode(decoded)
        #expect(String(decoding: encoded, as: UTF8.self).contains(#""protocol":"h2c""#))
        #expect(!String(decoding: try JSONEncoder().encode(ServiceRegistration(url: "http://127.0.0.1:9000")), as: UTF8.self).contains("protocol"))
        // A stored record (what Redis, etcd and Consul hold) keeps it.
        let record = InstanceRecord(service: "grpc", instanceID: "a", registration: decoded, createIndex: 1, modifyIndex: 1)
        let back = try JSONDecoder().decode(InstanceRecord.self, from: try JSONEncoder().encode(record))
        #expect(back.registration.upstreamProtocol == .h2c)
        do {
            _ = try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url":"http://127.0.0.1:9000","protocol":"http2"}"#.utf8))
            Issue.record("an unknown protocol was accepted")
        } catch let error as FieldError {
            #expect(error.field == "protocol")
        }
    }

    @Test func webSocketRoutesFromTheCLIAndJSON() throws {
        let ws = try RouteSpec(parsingCLI: "WS /ws/{room}")
        #expect(ws.methods == ["GET"] && ws.isWebSocket && ws.path == "/ws/{room}")
        #expect(try RouteSpec(parsingCLI: "GET /ws/{room}").isWebSocket == false)
        let decoded = try JSONDecoder().decode(RouteSpec.self, from: Data(#"{"methods":["GET"],"path":"/ws","websocket":true}"#.utf8))
        #expect(decoded.isWebSocket)
        let encoded = String(decoding: try JSONEncoder().encode(decoded), as: UTF8.self)
        #expect(encoded.contains(#""websocket":true"#))
        #expect(!String(decoding: try JSONEncoder().encode(RouteSpec(path: "/x")), as: UTF8.self).contains("websocket"))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(RouteSpec.self, from: Data(#"{"path":"/ws","websocket":"yes"}"#.utf8))
        }
        var table = RouteTable.Builder()
        table.add(service: "chat", instanceID: "a", template: try RouteTemplate(parsing: "/ws"), methods: ["GET"], isWebSocket: false)
        table.add(service: "chat", instanceID: "b", template: try RouteTemplate(parsing: "/ws"), methods: ["GET"], isWebSocket: true)
        let built = table.build()
        #expect(built.entries.count == 1 && built.entries[0].isWebSocket, "a WebSocket route once any instance says so")
    }

    @Test func healthUnderAPrefixIsAllowed() {
        #expect(field { $0.prefix = "/svc"; $0.routes = [RouteSpec(path: "/health")] } == nil)
    }

    @Test func serviceAndInstanceNames() {
        #expect(throws: FieldError.self) { try Names.validateServiceName("-a") }
        #expect(throws: FieldError.self) { try Names.validateServiceName(String(repeating: "a", count: 64)) }
        #expect(throws: FieldError.self) { try Names.validateInstanceID("a/b") }
        #expect(throws: Never.self) { try Names.validateServiceName("user-service") }
        #expect(throws: Never.self) { try Names.validateInstanceID("10.0.0.1:8080") }
    }

    @Test func urlParsing() throws {
        let u = try ServiceURL(parsing: "http://[::1]:8080")
        #expect(u.connectHost == "::1" && u.port == 8080)
        #expect(try ServiceURL(parsing: "https://Example.com").port == 443)
        #expect(Names.defaultInstanceID(for: try ServiceURL(parsing: "http://127.0.0.1:8002")) == "127.0.0.1-8002")
    }

    @Test func decodingIsStrictAboutUnknownKeys() throws {
        let json = Data(#"{"url": "http://127.0.0.1:1", "ttl": 5}"#.utf8)
        #expect(throws: StrictKeys.UnknownKey.self) { try JSONDecoder().decode(ServiceRegistration.self, from: json) }
        let nested = Data(#"{"url": "http://127.0.0.1:1", "routes": [{"path": "/a", "method": "GET"}]}"#.utf8)
        do {
            _ = try JSONDecoder().decode(ServiceRegistration.self, from: nested)
            Issue.record("expected failure")
        } catch let e as StrictKeys.UnknownKey {
            #expect(StrictKeys.fieldPath(e.path + [e.key]) == "routes[0].method")
        }
    }

    @Test func instanceRecordRoundTripsFlattened() throws {
        let reg = ServiceRegistration(url: "http://127.0.0.1:1", version: "1.2.3", routes: [RouteSpec(methods: ["GET"], path: "/a", isPublic: true)])
        let rec = InstanceRecord(service: "s", instanceID: "i", registration: reg, createIndex: 3, modifyIndex: 4, heartbeatAgeSeconds: 1.5)
        let data = try JSONEncoder().encode(rec)
        let obj = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(obj["version"] as? String == "1.2.3")
        #expect(obj["instance_id"] as? String == "i")
        #expect(obj["index"] as? Int == 4)
        #expect(try JSONDecoder().decode(InstanceRecord.self, from: data) == rec)
    }

    @Test func openapiPathRoundTripsAndTheLenientRecordDecoderKeepsIt() throws {
        let body = #"{"url": "http://127.0.0.1:9000", "openapi_path": "/openapi.json"}"#
        let r = try JSONDecoder().decode(ServiceRegistration.self, from: Data(body.utf8))
        #expect(r.openapiPath == "/openapi.json")
        let encoded = String(decoding: try JSONEncoder().encode(r), as: UTF8.self)
        #expect(encoded.contains(#""openapi_path":"\/openapi.json""#) || encoded.contains(#""openapi_path":"/openapi.json""#))
        let record = InstanceRecord(service: "a", instanceID: "i", registration: r, createIndex: 1, modifyIndex: 1)
        let back = try JSONDecoder().decode(InstanceRecord.self, from: try JSONEncoder().encode(record))
        #expect(back.registration.openapiPath == "/openapi.json")
        #expect(try JSONDecoder().decode(ServiceRegistration.self, from: Data(#"{"url": "http://127.0.0.1:9000"}"#.utf8)).openapiPath == nil)
    }
}
