/// One finished gateway span as the I/O thread records it: a small value of ids, times and the
/// strings the request already had (no formatting happens on the data path; the exporter
/// renders names and attributes when it encodes a batch).
public struct SpanRecord: Sendable, Equatable {
    /// The trace id, this span's id and the flags sent upstream.
    public var context: TraceParent
    /// The caller's span id (0: this span is the trace's root).
    public var parentSpanID: UInt64
    public var startUnixNanos: UInt64
    public var endUnixNanos: UInt64
    /// `http.request.method`, e.g. `GET`.
    public var method: String
    /// The route template matched (`http.route`), e.g. `/users/{user_id}`; the span's name is
    /// the method and the template.
    public var routeTemplate: String
    /// The path requested (`url.path`).
    public var path: String
    /// The request's `Host` (`server.address` and `server.port`); empty when absent.
    public var host: String
    public var service: String
    /// The instance of the last attempt, if one was picked.
    public var instanceID: String?
    public var instanceURL: ServiceURL?
    /// `http.response.status_code` (0: no response).
    public var status: Int
    /// How the exchange ended (`ok`, or an error code such as `upstream_timeout`).
    public var outcome: String
    /// Attempts beyond the first.
    public var retries: Int

    public init(
        context: TraceParent, parentSpanID: UInt64, startUnixNanos: UInt64, endUnixNanos: UInt64, method: String, routeTemplate: String, path: String,
        host: String, service: String, instanceID: String?, instanceURL: ServiceURL?, status: Int, outcome: String, retries: Int
    ) {
        self.context = context
        self.parentSpanID = parentSpanID
        self.startUnixNanos = startUnixNanos
        self.endUnixNanos = endUnixNanos
        self.method = method
        self.routeTemplate = routeTemplate
        self.path = path
        self.host = host
        self.service = service
        self.instanceID = instanceID
        self.instanceURL = instanceURL
        self.status = status
        self.outcome = outcome
        self.retries = retries
    }

    /// The span's name: method and route template, e.g. `GET /users/{user_id}`.
    public var name: String { method + " " + routeTemplate }

    /// A server span is an error when the gateway answered 5xx or the exchange did not end
    /// well (OpenTelemetry HTTP semantic conventions: 4xx is the client's error, not the
    /// server span's).
    public var isError: Bool { status >= 500 || status == 0 || outcome != "ok" }
}
