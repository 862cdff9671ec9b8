import Foundation
import Logging
import Testing
@testable import TapperRegistry
import TapperTesting

/// The behaviours an OpenAPI fuzzer (schemathesis, `scripts/api-fuzz`) found at odds with the
/// document, each pinned down here: percent-encoded path parameters, 405 with `Allow`, the
/// blocking query's bounds, and field rules the document states.
@Suite struct RegistryConformanceTests {
    static let registration = #"{"url": "http://127.0.0.1:9001", "routes": [{"methods": ["GET"], "path": "/users/{user_id}"}]}"#

    @Test func percentEncodedInstanceIDsAreDecodedBeforeValidation() async throws {
        try await withLiveRegistry { url, _ in
            let put = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/ah_o1%3Aj", body: Data(Self.registration.utf8))
            #expect(put.status == 201, "\(put.text)")
            #expect(try put.json()["instance_id"] as? String == "ah_o1:j")
            // The same instance, whichever way the client spells it.
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/users/instances/ah_o1:j/heartbeat").status == 200)
            #expect(try await httpRequest(.PUT, "\(url)/v1/services/%75sers/instances/ah_o1%3aj/heartbeat").status == 200)
            let one = try await httpRequest(.GET, "\(url)/v1/services/users").json()
            let ids = (one["instances"] as? [[String: Any]])?.compactMap { $0["instance_id"] as? String }
            #expect(ids == ["ah_o1:j"])
            #expect(try await httpRequest(.DELETE, "\(url)/v1/services/users/instances/ah_o1%3Aj").status == 204)
            #expect(try await httpRequest(.DELETE, "\(url)/v1/services/users/instances/ah_o1:j").status == 404)
        }
    }

    @Test func badlyEncodedOrInvalidNamesAre400() async throws {
        let cases = [
            ("/v1/services/users/instances/a%2Fb", "instance_id"),
            ("/v1/services/users/instances/a%ZZ", "instance_id"),
            ("/v1/services/users/instances/a%FF", "instance_id"),
            ("/v1/services/users/instances/a%C3", "instance_id"),
            ("/v1/services/Us%65rs/instances/a", "service"),
            ("/v1/services/users%0A/instances/a", "service"),
        ]
        try await withLiveRegistry { url, _ in
            // Raw bytes, so that no client library re-encodes the path; one exchange at a time
            // (RawHTTP blocks a thread of the shared pool while it waits).
            let port = try #require(Int(url.split(separator: ":").last ?? ""))
            let body = Self.registration
            for (path, field) in cases {
                for (method, target, payload) in [("PUT", path, body), ("DELETE", path, ""), ("PUT", path + "/heartbeat", "")] {
                    let request = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(payload.utf8.count)\r\nConnection: close\r\n\r\n\(payload)"
                    let reply = try await RawHTTP.exchange(port: port, [request])
                    #expect(reply.status == 400, "\(method) \(target): \(reply.text)")
                    #expect(reply.text.contains(#""field":"\#(field)""#), "\(method) \(target): \(reply.text)")
                }
            }
        }
    }

    @Test func aKnownPathWithAnotherMethodIs405WithAllow() async throws {
        try await withLiveRegistry { url, _ in
            let cases: [(String, String, String)] = [
                ("TRACE", "/v1/services", "GET, HEAD"),
                ("POST", "/v1/catalog", "GET, HEAD"),
                ("PATCH", "/v1/services/users/instances/a", "DELETE, PUT"),
                ("GET", "/v1/services/users/instances/a/heartbeat", "PUT"),
                ("OPTIONS", "/v1/services/users", "GET, HEAD"),
                ("DELETE", "/v1/openapi.json", "GET, HEAD"),
            ]
            for (method, path, allow) in cases {
                let reply = try await httpRequest(.init(rawValue: method), url + path)
                #expect(reply.status == 405, "\(method) \(path): \(reply.status) \(reply.text)")
                #expect(reply.headers.first(name: "Allow") == allow, "\(method) \(path)")
                let code = ((try? reply.json())?["error"] as? [String: Any])?["code"] as? String
                #expect(code == "method_not_allowed", "\(reply.text)")
            }
            // HEAD is served wherever GET is; an unknown path is still 404.
            #expect(try await httpRequest(.HEAD, url + "/v1/services").status == 200)
            #expect(try await httpRequest(.TRACE, url + "/v1/nothing").status == 404)
            #expect(try await httpRequest(.GET, url + "/v1/services/users/instances").status == 404)
        }
    }

    @Test func indexZeroWaitsOnlyUntilTheFirstChangeAndNeverPastTheBound() async throws {
        let config = RegistryServer.Configuration(maxWait: .milliseconds(1500))
        try await withLiveRegistry(configuration: config) { url, _ in
            // A registry that never changed has index 0: index=0 waits, within the bound.
            var started = ContinuousClock.now
            var reply = try await httpRequest(.GET, "\(url)/v1/catalog?index=0&wait=20s")
            var waited = ContinuousClock.now - started
            #expect(reply.status == 200 && reply.headers.first(name: "X-Tapper-Index") == "0")
            #expect(waited >= .milliseconds(1500) && waited < .milliseconds(3000), "\(waited)")
            // Once something changed, index=0 is already passed and answers at once.
            _ = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data(Self.registration.utf8))
            started = ContinuousClock.now
            reply = try await httpRequest(.GET, "\(url)/v1/catalog?index=0&wait=20s")
            waited = ContinuousClock.now - started
            #expect(reply.headers.first(name: "X-Tapper-Index") == "1")
            #expect(waited < .milliseconds(1000), "\(waited)")
        }
    }

    @Test func waitIsCutToTheMaximumAndTheDefaultApplies() async throws {
        let config = RegistryServer.Configuration(maxWait: .milliseconds(400), defaultWait: .milliseconds(250))
        try await withLiveRegistry(configuration: config) { url, _ in
            _ = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data(Self.registration.utf8))
            // Asked for ten minutes, cut to 400 ms (+ up to 1/16 jitter).
            var started = ContinuousClock.now
            var reply = try await httpRequest(.GET, "\(url)/v1/catalog?index=1&wait=10m")
            var waited = ContinuousClock.now - started
            #expect(reply.status == 200)
            #expect(waited >= .milliseconds(400) && waited < .milliseconds(1500), "\(waited)")
            // No wait given: the default.
            started = ContinuousClock.now
            reply = try await httpRequest(.GET, "\(url)/v1/catalog?index=1")
            waited = ContinuousClock.now - started
            #expect(reply.status == 200)
            #expect(waited >= .milliseconds(250) && waited < .milliseconds(1300), "\(waited)")
            // The document states this server's bounds.
            let doc = try await httpRequest(.GET, "\(url)/v1/openapi.json").json()
            let catalog = ((doc["paths"] as? [String: Any])?["/v1/catalog"] as? [String: Any])?["get"] as? [String: Any]
            let description = catalog?["description"] as? String ?? ""
            #expect(description.contains("defaults to 250ms") && description.contains("cut to 400ms"), "\(description)")
        }
    }

    @Test func badQueryValuesAre400EvenWithoutIndex() async throws {
        try await withLiveRegistry { url, _ in
            for query in ["wait=soon", "wait=1e3", "wait=+5s", "index=-1", "index=+1", "index=1.5", "index=", "index=18446744073709551616"] {
                let reply = try await httpRequest(.GET, "\(url)/v1/catalog?\(query)")
                #expect(reply.status == 400, "\(query): \(reply.text)")
                #expect(reply.errorField == (query.hasPrefix("wait") ? "wait" : "index"), "\(query)")
            }
        }
    }

    @Test func jitterAddsAtMostASixteenth() {
        /// SplitMix64: a seeded generator, so the draws are the same on every run.
        struct SplitMix: RandomNumberGenerator {
            var state: UInt64
            mutating func next() -> UInt64 {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return z ^ (z >> 31)
            }
        }
        var rng = SplitMix(state: 23)
        let wait = Duration.milliseconds(1600)
        var draws = Set<Duration>()
        for _ in 0..<500 {
            let j = BlockingWait.jittered(wait, using: &rng)
            #expect(j >= wait && j <= .milliseconds(1700), "\(j)")
            draws.insert(j)
        }
        // Spread over the whole range, not a constant.
        #expect(draws.count > 50)
        #expect(draws.contains { $0 > .milliseconds(1690) } && draws.contains { $0 < .milliseconds(1610) })
        // Below 16 ms there is nothing to spread.
        #expect(BlockingWait.jittered(.milliseconds(10), using: &rng) == .milliseconds(10))
    }

    @Test func durationsFollowTheDocumentedPattern() {
        #expect(DurationParser.parse("500ms") == .milliseconds(500))
        #expect(DurationParser.parse("2.5") == .milliseconds(2500))
        #expect(DurationParser.parse("5m") == .seconds(300))
        #expect(DurationParser.parse("1h") == .seconds(3600))
        for bad in ["", "s", "+5s", "-1s", "1e3", "0x10", " 5", "5 ", ".5s", "5.s", "inf", "nan", "5d"] {
            #expect(DurationParser.parse(bad) == nil, "\(bad)")
        }
        // Absurdly large values are capped, not a crash.
        #expect(DurationParser.parse("99999999999999999999999h")! > .seconds(86_400 * 365))
    }

    @Test func aRouteListedTwiceIsAConflict() async throws {
        let body = #"{"url": "http://127.0.0.1:1", "routes": [{"path": "/a/{x}"}, {"path": "/a/{y}"}]}"#
        try await withLiveRegistry { url, _ in
            let reply = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data(body.utf8))
            #expect(reply.status == 409, "\(reply.text)")
            #expect(reply.errorField == "routes[1]")
        }
    }

    @Test(arguments: [
        #"{"url": ""}"#, #"{"url": "http://[zz]:80"}"#, #"{"url": "http://[]"}"#, #"{"url": "http://a:0"}"#,
        #"{"url": "http://a", "routes": [{"path": "/a", "methods": ["ı"]}]}"#,
    ])
    func valuesTheDocumentRefusesAreRefused(body: String) async throws {
        try await withLiveRegistry { url, _ in
            let reply = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: Data(body.utf8))
            #expect(reply.status == 400, "\(body): \(reply.text)")
        }
    }

    /// "/" followed by a combining mark (or an emoji modifier) is one `Character` in Swift; the
    /// rules are about code points, as in the document (and as the gateway splits paths).
    @Test func pathRulesAreAboutCodePointsNotCharacters() async throws {
        let accepted: [[String: Any]] = [
            ["url": "http://a:1", "routes": [["path": "/\u{1F3FB}x/{id}"]]],
            ["url": "http://a:1", "health_endpoint": "/\u{301}a"],
            ["url": "http://a:1", "prefix": "/\u{301}api", "routes": [["path": "/\u{301}"]]],
        ]
        let refused: [([String: Any], String)] = [
            (["url": "http://a:1", "routes": [["path": "/a/\u{301}{x}"]]], "routes[0].path"),
            (["url": "http://a:1", "routes": [["path": "/a/{x}\u{301}"]]], "routes[0].path"),
            (["url": "http://a:1", "routes": [["path": "/a//\u{301}"]]], "routes[0].path"),
            (["url": "http://a:1", "health_endpoint": "/a \u{301}"], "health_endpoint"),
            (["url": "http://a:1", "prefix": "/api/\u{301}/"], "prefix"),
        ]
        let acceptedBodies = accepted.map { jsonBody($0) }
        let refusedBodies = refused.map { (jsonBody($0.0), $0.1) }
        try await withLiveRegistry { url, _ in
            for (i, body) in acceptedBodies.enumerated() {
                let reply = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a\(i)", body: body)
                #expect(reply.status == 201 || reply.status == 200, "\(String(decoding: body, as: UTF8.self)): \(reply.text)")
            }
            for (body, field) in refusedBodies {
                let reply = try await httpRequest(.PUT, "\(url)/v1/services/other/instances/b", body: body)
                #expect(reply.status == 400 && reply.errorField == field, "\(String(decoding: body, as: UTF8.self)): \(reply.text)")
            }
        }
    }

    @Test func textLimitsCountCharactersAsTheDocumentDoes() async throws {
        // 64 two-byte characters: 128 bytes, within the documented maxLength of 64.
        let version = String(repeating: "é", count: 64)
        try await withLiveRegistry { url, _ in
            let ok = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: jsonBody(["url": "http://a:1", "version": version]))
            #expect(ok.status == 201, "\(ok.text)")
            let tooLong = try await httpRequest(.PUT, "\(url)/v1/services/users/instances/a", body: jsonBody(["url": "http://a:1", "version": version + "é"]))
            #expect(tooLong.status == 400 && tooLong.errorField == "version", "\(tooLong.text)")
        }
    }

    @Test func theDocumentStatesWhetherWritesNeedAToken() async throws {
        @Sendable func writeSecurity(_ url: String) async throws -> [[String: Any]]? {
            let doc = try await httpRequest(.GET, "\(url)/v1/openapi.json").json()
            let item = (doc["paths"] as? [String: Any])?["/v1/services/{service}/instances/{instance_id}"] as? [String: Any]
            return (item?["put"] as? [String: Any])?["security"] as? [[String: Any]]
        }
        try await withLiveRegistry { url, _ in
            let security = try await writeSecurity(url)
            #expect(security?.isEmpty == true)
        }
        try await withLiveRegistry(configuration: .init(token: { "t" })) { url, _ in
            let security = try await writeSecurity(url)
            #expect(security?.first?["bearer"] != nil)
        }
    }
}
