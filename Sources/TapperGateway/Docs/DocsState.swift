import CTapperAssets
import NIOCore
import NIOHTTP1
import Synchronization
import TapperCore

/// The gateway's public API documentation: the merged OpenAPI document at `/openapi.json` and
/// Swagger UI at `/docs` (paths from the configuration), answered before routing like `/health`.
///
/// The document is built off the I/O threads by ``OpenAPICollector`` and kept here as bytes;
/// a request for it copies a reference under a lock. Ordinary requests pay one byte comparison
/// in ``AdminDispatch/claims(_:)``: the second byte of the path against those of these paths.
public final class DocsState: Sendable {
    /// `--openapi-path` and `--docs-path` as bytes (empty: off).
    let openapiPath: [UInt8]
    let docsPath: [UInt8]
    private let document = Mutex<(bytes: ByteBuffer, version: Int)?>(nil)

    init(configuration: GatewayConfiguration) {
        openapiPath = configuration.openapiPath.map { Array($0.utf8) } ?? []
        docsPath = configuration.docsPath.map { Array($0.utf8) } ?? []
    }

    /// The merged document's bytes, or nil before the first merge.
    public var currentDocument: ByteBuffer? { document.withLock { $0?.bytes } }

    /// How many documents were installed (tests wait for a change with it).
    public var documentVersion: Int { document.withLock { $0?.version ?? 0 } }

    /// Installs a freshly merged document.
    func install(_ json: String) {
        let bytes = ByteBuffer(string: json)
        document.withLock { current in
            current = (bytes, (current?.version ?? 0) + 1)
        }
    }

    /// What the path is, if it is one of the docs paths.
    enum Endpoint: Equatable {
        case openapi
        case page
        case asset(String)
    }

    /// Whether `path` is the document, the page or one of its assets.
    @inline(__always)
    func endpoint(_ path: Substring) -> Endpoint? {
        path.utf8.withContiguousStorageIfAvailable { p -> Endpoint? in
            if !openapiPath.isEmpty, p.count == openapiPath.count, p.elementsEqual(openapiPath) { return .openapi }
            let n = docsPath.count
            guard n > 0, p.count >= n, p[0..<n].elementsEqual(docsPath) else { return nil }
            if p.count == n || (p.count == n + 1 && p[n] == UInt8(ascii: "/")) { return .page }
            guard p[n] == UInt8(ascii: "/") else { return nil }
            return .asset(String(decoding: p[(n + 1)...], as: UTF8.self))
        } ?? nil
    }

    /// The second bytes of the docs paths, for the data path's one-byte test.
    var secondBytes: [UInt8] {
        [openapiPath, docsPath].compactMap { $0.count > 1 ? $0[1] : nil }
    }

    typealias Reply = ClientOutput.Response

    /// The answer to a docs path (see ``endpoint(_:)``).
    func respond(_ endpoint: Endpoint, method: String, snapshot: () -> RoutingSnapshot) -> Reply {
        guard method == "GET" || method == "HEAD" else { return Reply(.adminReadOnly) }
        switch endpoint {
        case .openapi:
            let bytes =
                currentDocument
                ?? ByteBuffer(string: OpenAPICollector.merge(snapshot: snapshot(), documents: [:], routable: nil).document.serialized())
            return Reply(status: .ok, bytes: bytes, contentType: "application/json", headers: [.init(name: "Cache-Control", value: "no-cache")])
        case .page:
            return Reply(status: .ok, body: DocsPage.html(openapiURL: String(decoding: openapiPath, as: UTF8.self), docsPath: String(decoding: docsPath, as: UTF8.self)), contentType: "text/html; charset=utf-8")
        case .asset(let name):
            guard let asset = DocsAssets.named(name) else { return Reply(.noAdminEndpoint) }
            return Reply(status: .ok, bytes: asset.bytes, contentType: asset.contentType, headers: [.init(name: "Cache-Control", value: "public, max-age=86400")])
        }
    }
}

/// The Swagger UI files compiled into the binary (``CTapperAssets``).
enum DocsAssets {
    struct Asset {
        var bytes: ByteBuffer
        var contentType: String
    }

    static let bundle = load(tapper_asset_swagger_ui_bundle_js, "application/javascript; charset=utf-8")
    static let css = load(tapper_asset_swagger_ui_css, "text/css; charset=utf-8")
    static let license = load(tapper_asset_swagger_ui_license, "text/plain; charset=utf-8")

    static func named(_ name: String) -> Asset? {
        switch name {
        case "swagger-ui-bundle.js": return bundle
        case "swagger-ui.css": return css
        case "LICENSE": return license
        default: return nil
        }
    }

    static func load(_ get: (UnsafeMutablePointer<UInt>?) -> UnsafePointer<UInt8>?, _ type: String) -> Asset {
        var length: UInt = 0
        guard let p = get(&length) else { return Asset(bytes: ByteBuffer(), contentType: type) }
        return Asset(bytes: ByteBuffer(bytes: UnsafeBufferPointer(start: p, count: Int(length))), contentType: type)
    }

    /// The vendored Swagger UI version.
    static var version: String { String(cString: tapper_asset_swagger_ui_version()) }
}
