/// How the gateway speaks to an instance.
public enum UpstreamProtocol: String, Sendable, Hashable, CaseIterable, Codable {
    /// HTTP/1.1 with keep-alive: one request at a time per connection (the default).
    case http1
    /// HTTP/2 over cleartext TCP with prior knowledge (RFC 9113 3.3): many requests multiplexed
    /// on one connection per gateway thread, response trailers carried (gRPC needs both).
    case h2c
}
