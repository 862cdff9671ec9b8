import Foundation
import Hummingbird
import Logging
import Testing
import TapperRegistry
import TapperTesting

/// Keeps `GET /v1/openapi.json` true: every documented operation is routed, every routed
/// endpoint is documented, and each documented operation answers (not the router's 404/405).
@Suite struct OpenAPIDocumentTests {
    static func normalise(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { seg in
            seg.hasPrefix(":") || (seg.hasPrefix("{") && seg.hasSuffix("}")) ? "{}" : String(seg)
        }.joined(separator: "/")
    }

    func documented(_ url: String) async throws -> Set<String> {
        let doc = try await httpRequest(.GET, "\(url)/v1/openapi.json").json()
        #expect(doc["openapi"] as? String == "3.1.0")
        let paths = try #require(doc["paths"] as? [String: [String: Any]])
        var ops = Set<String>()
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch"] where item[method] != nil {
                ops.insert("\(method.uppercased()) \(Self.normalise(path))")
            }
        }
        return ops
    }

    @Test func documentAndRouterAgree() async throws {
        var logger = Logger(label: "t")
        logger.logLevel = .critical
        let routed = Set(RegistryServer(backend: try MemoryBackend(logger: logger)).router().routes.map { "\($0.method) \(Self.normalise("\($0.path)"))" })
        try await withLiveRegistry { url, _ in
            let ops = try await documented(url)
            #expect(ops == routed, "documented but not routed: \(ops.subtracting(routed)); routed but not documented: \(routed.subtracting(ops))")
        }
    }

    @Test func everyDocumentedOperationAnswers() async throws {
        try await withLiveRegistry { url, _ in
            for op in try await documented(url) {
                let parts = op.split(separator: " ")
                let path = String(parts[1]).replacingOccurrences(of: "{}", with: "svc-a")
                let body = parts[0] == "PUT" && !path.hasSuffix("heartbeat") ? jsonBody(["url": "http://127.0.0.1:9"]) : nil
                let reply = try await httpRequest(.init(rawValue: String(parts[0])), url + path, body: body)
                let code = ((try? reply.json())?["error"] as? [String: Any])?["code"] as? String
                #expect(code != "not_found" && reply.status != 405, "\(op) is documented but not served: \(reply.status) \(reply.text)")
            }
        }
    }
}
