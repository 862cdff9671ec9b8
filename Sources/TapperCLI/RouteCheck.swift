import ArgumentParser
import Foundation
import TapperClient
import TapperCore
import Yams

/// `tapper route test --file routes.yaml`: a table of expectations checked against the live
/// route table, in the manner of Envoy's router_check_tool.
///
/// ```yaml
/// - method: GET
///   path: /users/42
///   service: users          # expected owner (omit for 404/405 cases)
///   params: {user_id: "42"} # optional
///   status: 200             # optional: 200 matched (default when service is set), 404, 405
/// ```
struct RouteCheck {
    let file: String
    let onlyFailures: Bool
    let failUnder: Double?
    let json: Bool
    let registry: RegistryOptions

    struct Case: Decodable {
        var method: String
        var path: String
        var service: String?
        var params: [String: String]?
        var status: Int?
    }

    struct Outcome: Encodable {
        var method: String
        var path: String
        var passed: Bool
        var problems: [String]
    }

    struct Summary: Encodable {
        var cases: Int
        var failed: Int
        var coveragePercent: Double
        var routesExercised: Int
        var routesRegistered: Int
        var untested: [String]
        var results: [Outcome]
        enum CodingKeys: String, CodingKey {
            case cases, failed, results, untested
            case coveragePercent = "coverage_percent"
            case routesExercised = "routes_exercised"
            case routesRegistered = "routes_registered"
        }
    }

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
        let cases: [Case]
        do {
            cases = try YAMLDecoder().decode([Case].self, from: data)
        } catch {
            throw CLIError("\(file) is not a list of cases (method, path, service, params, status): \(error)")
        }
        let catalog: CatalogSnapshot
        do { catalog = try await registry.client().catalog() } catch { throw CLIError("\(error)") }
        let table = RouteTable(snapshot: catalog)
        var exercised = Set<Int>()
        var results: [Outcome] = []
        for c in cases {
            let method = c.method.uppercased()
            let pathOnly = RequestTarget.path(of: c.path)
            let expectedStatus = c.status ?? (c.service == nil ? 404 : 200)
            var problems: [String] = []
            switch table.resolve(method: method, path: pathOnly) {
            case .matched(let m):
                exercised.insert(m.entryIndex)
                if expectedStatus != 200 { problems.append("expected \(expectedStatus), but \(m.entry.template.raw) of '\(m.entry.service)' matches") }
                if let s = c.service, s != m.entry.service { problems.append("expected service '\(s)', got '\(m.entry.service)' (\(m.entry.template.raw))") }
                if let want = c.params {
                    let got = Dictionary(m.parameters.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                    if got != want { problems.append("expected params \(want.sorted { $0.key < $1.key }), got \(got.sorted { $0.key < $1.key })") }
                }
            case .methodNotAllowed(let allowed):
                if expectedStatus != 405 { problems.append("expected \(expectedStatus)\(c.service.map { " (service '\($0)')" } ?? ""), got 405 (allowed: \(allowed.joined(separator: ", ")))") }
            case .notFound:
                if expectedStatus != 404 { problems.append("expected \(expectedStatus)\(c.service.map { " (service '\($0)')" } ?? ""), got 404") }
            }
            results.append(Outcome(method: method, path: c.path, passed: problems.isEmpty, problems: problems))
        }
        let total = table.entries.count
        let coverage = total == 0 ? 100 : (Double(exercised.count) / Double(total) * 1000).rounded() / 10
        let untested = table.entries.enumerated().filter { !exercised.contains($0.offset) }.map { "\($0.element.methods.first ?? "*") \($0.element.template.raw)" }
        let failed = results.filter { !$0.passed }.count
        let summary = Summary(
            cases: results.count, failed: failed, coveragePercent: coverage, routesExercised: exercised.count, routesRegistered: total,
            untested: untested, results: onlyFailures ? results.filter { !$0.passed } : results
        )
        if json {
            try JSONOutput.print(summary)
        } else {
            let style = Style.forStandardOutput()
            for r in summary.results {
                if r.passed {
                    print("\(style.green("PASS")) \(r.method) \(r.path)")
                } else {
                    print("\(style.red("FAIL")) \(r.method) \(r.path): \(r.problems.joined(separator: "; "))")
                }
            }
            print("\(results.count) cases, \(failed) failed; coverage \(coverage)% (\(exercised.count) of \(total) routes)")
            if !untested.isEmpty && !onlyFailures { print("untested: \(untested.joined(separator: ", "))") }
        }
        if failed > 0 { throw ExitCode(1) }
        if let failUnder, coverage < failUnder {
            if !json { print("coverage \(coverage)% is under --fail-under \(failUnder)%") }
            throw ExitCode(1)
        }
    }
}
