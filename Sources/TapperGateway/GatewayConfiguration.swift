import TapperCore

/// Every setting of the gateway, with the defaults of DESIGN.md.
public struct GatewayConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// Event-loop threads serving connections (0: one per core).
    public var threads = 0
    /// Upstream connect timeout and time allowed between upstream reads (→ 504).
    public var upstreamTimeout: Duration = .seconds(5)
    /// Largest request body accepted (→ 413), streamed and counted, never buffered.
    public var maxBodyBytes: Int64 = 2 * 1024 * 1024 * 1024
    /// Largest request head (request line + headers) accepted (→ 431).
    public var maxHeaderBytes = 32 * 1024
    /// Longest request target accepted (→ 414).
    public var maxURIBytes = 8 * 1024
    /// Time a client has to send a complete request head (→ 408 and close).
    public var headerReadTimeout: Duration = .seconds(10)
    /// Idle keep-alive client connections are closed after this long.
    public var idleTimeout: Duration = .seconds(60)
    /// An upgraded connection (WebSocket tunnel) with no byte either way for this long is closed;
    /// request timeouts do not apply to tunnels.
    public var tunnelIdleTimeout: Duration = .seconds(3600)
    /// On SIGTERM, how long in-flight requests may take before connections are cut.
    public var drainTimeout: Duration = .seconds(30)
    /// Idle pooled upstream connections per instance and I/O thread (reactor). Above the
    /// concurrency an instance sees, or a burst of responses closes connections the next burst
    /// of requests must open again: 128 made 256 concurrent clients open ~2,700 upstream
    /// connections a second to one instance. Idle ones cost a descriptor each; the upstream's
    /// own keep-alive timeout (uvicorn: 5 s) closes them after a load peak.
    public var maxIdleUpstreamConnections = 1024
    /// Request bodies up to this size are kept so a retry can replay them.
    public var retryBufferBytes = 64 * 1024
    /// How many different instances one request may try.
    public var maxAttempts = 3
    /// Write one logfmt access-log line per request to stdout.
    public var accessLog = true
    /// Add `X-Tapper-Instance` (service/instance) to responses.
    public var exposeInstanceHeader = true
    /// Gateway-wide default balancer.
    public var loadBalancer = "round-robin"
    /// Peers whose `X-Forwarded-For/-Proto/-Host` are believed (appended to / kept); from anyone
    /// else those headers are replaced with what the gateway sees. Empty: trust no one.
    public var trustedProxies: [CIDR] = []
    /// The bearer token `/_tapper/*` needs, read on every admin request (a rotated token file
    /// takes effect at once); nil leaves the admin endpoints open. `/health` is always open.
    public var adminToken: @Sendable () -> String? = { nil }
    /// Who may use proxied routes (`--auth`); nil lets everyone through. Routes registered
    /// with `"public": true` and `/health` are never checked.
    public var auth: (any GatewayAuthProvider)? = nil
    /// The gateway-wide request rate limit (`--rate-limit`, `--rate-limit-key`); nil: none.
    /// `/health` and `/_tapper/*` are never limited.
    var rateLimiter: RateLimiter? = nil
    /// What every rate limit counts by (`--rate-limit-key`): the gateway-wide one and the
    /// services' and routes' own (`rate_limit` in registrations).
    var rateLimitKey: RateLimiter.Key = .clientIP

    /// Sets the gateway-wide rate limit (`limit` nil removes it) and the key of every limit.
    public mutating func setRateLimit(_ limit: RateLimit?, key: String = "ip") throws(FieldError) {
        let key = try RateLimiter.Key(parsing: key)
        rateLimitKey = key
        rateLimiter = limit.map { RateLimiter(limit: $0, key: key) }
    }

    /// The request header that pins a version of the service (`--version-header`), lower-cased
    /// bytes; empty: none. A pinned version without a routable instance gets 503.
    var versionHeader: [UInt8] = Array("x-tapper-version".utf8)
    /// The cookie that pins a version (`--version-cookie`); empty: none. Softer than the
    /// header: a cookie naming a version that is gone falls back to the split.
    public var versionCookie = "tapper-version"

    /// The header that pins a version (empty: none).
    public var versionHeaderName: String {
        get { String(decoding: versionHeader, as: UTF8.self) }
        set { versionHeader = Array(newValue.lowercased().utf8) }
    }

    /// Serve `/_tapper/*` (and `/health`) on this port instead of the main listener
    /// (`--admin-port`); 0 picks a free port.
    public var adminPort: Int? = nil
    /// Address of the admin listener (`--admin-host`).
    public var adminHost = "127.0.0.1"

    /// Where the gateway serves the merged OpenAPI document of its services (`--openapi-path`);
    /// nil: not served (`--no-docs`). Answered before routing, like `/health`.
    public var openapiPath: String? = "/openapi.json"
    /// Where the gateway serves Swagger UI for that document (`--docs-path`), with its assets
    /// under it; nil: not served.
    public var docsPath: String? = "/docs"
    /// Where gateway spans go (`--otlp-endpoint`); nil: tracing is off, and `traceparent`
    /// passes through untouched. Run the exporter as a service next to the server.
    public var tracing: TraceExporter? = nil

    /// HTTPS beside the plain port (`--tls-port`); nil: none. 0 picks a free port.
    public var tlsPort: Int? = nil
    /// The certificate chains and keys the TLS listener serves (`--tls-cert`/`--tls-key`, in
    /// pairs): the first is the default, the others are chosen by SNI. Files are re-read when
    /// they change.
    public var tlsCertificates: [TLSCertificateFiles] = []
    /// HTTP/2 towards clients: h2 by ALPN on the TLS port, h2c with prior knowledge on the plain
    /// one (`--no-http2` turns both off).
    public var http2 = true
    /// SETTINGS_MAX_CONCURRENT_STREAMS the gateway announces (`--http2-max-streams`).
    public var http2MaxConcurrentStreams = 100

    public init() {}
}

/// One `--tls-cert FILE --tls-key FILE` pair (PEM; the certificate file may hold the chain).
public struct TLSCertificateFiles: Sendable, Equatable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}
