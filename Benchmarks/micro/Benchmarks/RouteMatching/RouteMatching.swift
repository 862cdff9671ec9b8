import Benchmark
import TapperCore

/// Route matching cost against tables of 10, 1,000 and 10,000 routes. Each table mixes literal,
/// typed-parameter, plain-parameter and catch-all routes the way many services' APIs do; every
/// iteration resolves 100 request paths spread over the whole table. The bar: the cost at
/// 10,000 routes stays within 1.5x of the cost at 10.
func makeTable(routes: Int) -> (RouteTable, [String]) {
    var builder = RouteTable.Builder()
    var paths: [String] = []
    let services = max(1, routes / 20)
    for i in 0..<routes {
        let service = "svc\(i % services)"
        let kind = i % 4
        let template: String
        let sample: String
        switch kind {
        case 0:
            template = "/api/\(service)/items\(i)/{item_id:int}"
            sample = "/api/\(service)/items\(i)/42"
        case 1:
            template = "/api/\(service)/users\(i)/{user_id}/orders"
            sample = "/api/\(service)/users\(i)/jane/orders"
        case 2:
            template = "/api/\(service)/static\(i)/health/details"
            sample = template
        default:
            template = "/api/\(service)/files\(i)/{rest:path}"
            sample = "/api/\(service)/files\(i)/a/b/c.txt"
        }
        builder.add(service: service, instanceID: "i", template: try! RouteTemplate(parsing: template), methods: ["GET"])
        paths.append(sample)
    }
    let table = builder.build()
    // 100 paths spread evenly over the table.
    let step = max(1, paths.count / 100)
    let picked = stride(from: 0, to: paths.count, by: step).prefix(100).map { paths[$0] }
    return (table, Array(picked))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal], maxDuration: .seconds(3))
    for size in [10, 1_000, 10_000] {
        let (table, paths) = makeTable(routes: size)
        let lookups = Array(repeating: paths, count: max(1, 100 / paths.count)).flatMap { $0 }.prefix(100)
        Benchmark("resolve x100, \(size) routes") { benchmark in
            for _ in benchmark.scaledIterations {
                for path in lookups {
                    blackHole(table.resolve(method: "GET", path: path))
                }
            }
        }
    }
}
