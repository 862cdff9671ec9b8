// libFuzzer entry point for TapperCore, compiled into the TapperCore module itself by
// scripts/fuzz (swiftc -sanitize=fuzzer,address). One binary, four targets, chosen by
// $TAPPER_FUZZ_TARGET: route-template, route-matcher, registration-json, http-head.
// Each target checks invariants, not just "no crash": a violated one traps, and libFuzzer saves
// the input. A crash found becomes a regression test in Tests/TapperCoreTests/FuzzRegressionTests.swift.
import Foundation

private let target: String = ProcessInfo.processInfo.environment["TAPPER_FUZZ_TARGET"] ?? "route-template"

@_cdecl("LLVMFuzzerTestOneInput")
public func tapperFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    switch target {
    case "route-template": FuzzChecks.routeTemplate(bytes)
    case "route-matcher": FuzzChecks.routeMatcher(bytes)
    case "registration-json": FuzzChecks.registrationJSON(bytes)
    case "http-head": FuzzChecks.httpHead(bytes)
    default: fatalError("unknown TAPPER_FUZZ_TARGET \(target)")
    }
    return 0
}

enum FuzzChecks {
    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("invariant violated: \(message())") }
    }

    /// Any string: parsing either fails with a FieldError or yields a template whose text
    /// parses again to the same template (parsing is idempotent), and which matches a path built
    /// from its own literals.
    static func routeTemplate(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let template = try? RouteTemplate(parsing: text) else { return }
        let again = try? RouteTemplate(parsing: template.raw)
        check(again?.raw == template.raw && again?.shape == template.shape, "re-parse changed \(text)")
    }

    /// Lines 1…n-1 are templates owned by services s0, s1, …; the last line is "METHOD PATH".
    /// Resolution is deterministic, a match names an added route, and its parameters are the
    /// template's parameters.
    static func routeMatcher(_ bytes: UnsafeRawBufferPointer) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 2, lines.count <= 64 else { return }
        var builder = RouteTable.Builder()
        var added = Set<String>()  // "service template" pairs that were accepted
        for (i, line) in lines.dropLast().enumerated() {
            var methods: [String] = []
            var path = line
            if let space = line.firstIndex(of: " ") {
                methods = [String(line[..<space])]
                path = String(line[line.index(after: space)...])
            }
            guard let template = try? RouteTemplate(parsing: path) else { continue }
            let service = "s\(i % 3)"
            if builder.add(service: service, instanceID: "i\(i)", template: template, methods: methods) { added.insert("\(service) \(template.raw)") }
        }
        let table = builder.build()
        let request = lines.last!.split(separator: " ", maxSplits: 1).map(String.init)
        guard request.count == 2 else { return }
        let first = table.resolve(method: request[0], path: request[1])
        let second = table.resolve(method: request[0], path: request[1])
        switch (first, second) {
        case (.matched(let a), .matched(let b)):
            check(a.entry.template.raw == b.entry.template.raw, "resolution is not deterministic")
            check(added.contains("\(a.entry.service) \(a.entry.template.raw)"), "matched a route nobody added: \(a.entry.service) \(a.entry.template.raw)")
            check(a.parameters.count == a.entry.template.parameterNames.count, "parameters differ from the template's")
        case (.methodNotAllowed(let a), .methodNotAllowed(let b)):
            check(a == b && !a.isEmpty, "405 without a stable, non-empty Allow")
        case (.notFound, .notFound):
            break
        default:
            check(false, "resolution is not deterministic")
        }
        _ = table.explain(path: request[1])
        _ = table.nearby(path: request[1])
    }

    /// Any bytes as a registration body: decoding fails cleanly or, once valid, the stored form
    /// decodes back to the same registration.
    static func registrationJSON(_ bytes: UnsafeRawBufferPointer) {
        guard var registration = try? JSONDecoder().decode(ServiceRegistration.self, from: Data(bytes)) else { return }
        guard (try? registration.validate()) != nil else { return }
        guard let encoded = try? JSONEncoder().encode(registration) else {
            check(false, "a valid registration does not encode")
            return
        }
        let decoded = try? JSONDecoder().decode(ServiceRegistration.self, from: encoded)
        check(decoded == registration, "round trip changed the registration")
        _ = try? registration.publicTemplates()
    }

    /// Any bytes as a request or response head, and as a chunked body: ranges stay inside the
    /// input and nothing is consumed past it.
    static func httpHead(_ bytes: UnsafeRawBufferPointer) {
        for kind in [HTTPHeadParser.Kind.request, .response] {
            guard case .success(let head) = HTTPHeadParser.parse(bytes, kind: kind) else { continue }
            check(head.length <= bytes.count, "head longer than the input")
            for r in [head.method, head.target] + head.headers.flatMap({ [$0.name, $0.value] }) {
                check(r.lowerBound >= 0 && r.upperBound <= head.length, "a range outside the head")
            }
        }
        var chunks = ChunkedBodyTracker()
        if let used = try? chunks.consume(bytes) { check(used >= 0 && used <= bytes.count, "consumed \(used) of \(bytes.count)") }
    }
}
