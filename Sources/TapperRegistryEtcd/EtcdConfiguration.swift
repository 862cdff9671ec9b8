/// Where the etcd cluster is and where in it the catalog lives, parsed from
/// `etcd://host:port[,host:port…][/prefix]`.
public struct EtcdConfiguration: Sendable, Hashable {
    /// `http://host:port` base URLs, tried in order with failover.
    public var endpoints: [String]
    /// Key prefix of the catalog, starting and ending with `/` (default `/tapper/`).
    public var prefix: String
    public var requestTimeout: Duration

    public init(endpoints: [String], prefix: String = "/tapper/", requestTimeout: Duration = .seconds(3)) {
        self.endpoints = endpoints
        self.prefix = prefix
        self.requestTimeout = requestTimeout
    }

    /// Parses `etcd://host:port[,host:port…][/prefix]`; the path, if any, is the key prefix.
    public init(url: String) throws(EtcdURLError) {
        guard url.lowercased().hasPrefix("etcd://") else { throw EtcdURLError("'\(url)' is not an etcd:// URL") }
        let rest = url.dropFirst("etcd://".count)
        let hosts: Substring
        var prefix = "/tapper/"
        if let slash = rest.firstIndex(of: "/") {
            hosts = rest[..<slash]
            let path = String(rest[slash...])
            if path != "/" { prefix = path.hasSuffix("/") ? path : path + "/" }
        } else {
            hosts = rest
        }
        var endpoints: [String] = []
        for hp in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            guard let colon = hp.lastIndex(of: ":"), !hp[..<colon].isEmpty, let port = Int(hp[hp.index(after: colon)...]), (1...65535).contains(port) else {
                throw EtcdURLError("endpoint '\(hp)' in '\(url)' must be host:port")
            }
            endpoints.append("http://\(hp[..<colon]):\(port)")
        }
        self.init(endpoints: endpoints, prefix: prefix)
    }

    public var displayName: String {
        "etcd://" + endpoints.map { $0.replacingPrefix("http://") }.joined(separator: ",") + prefix
    }
}

/// A malformed `etcd://` URL.
public struct EtcdURLError: Error, CustomStringConvertible, Hashable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    func replacingPrefix(_ p: String) -> String { hasPrefix(p) ? String(dropFirst(p.count)) : self }
}
