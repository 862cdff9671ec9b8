/// Where and how to reach Redis, parsed from `redis://[user:password@]host:port[/db]`.
public struct RedisConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
    /// Prefix of every key and of the change channel.
    public var keyPrefix: String
    public var connectTimeout: Duration
    public var commandTimeout: Duration

    public init(
        host: String = "127.0.0.1",
        port: Int = 6379,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        keyPrefix: String = "tapper:",
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(3)
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.keyPrefix = keyPrefix
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses `redis://[user:password@]host[:port][/db]` (password alone: `redis://:secret@host`).
    /// - Throws: a message naming what is wrong.
    public init(url: String) throws(RedisURLError) {
        self.init()
        guard url.lowercased().hasPrefix("redis://") else { throw RedisURLError("'\(url)' is not a redis:// URL") }
        var rest = Substring(url.dropFirst("redis://".count))
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = String(credentials[..<colon])
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(String(credentials[credentials.index(after: colon)...]))
            } else {
                password = Self.percentDecoded(String(credentials))
            }
        }
        var hostPort = rest
        if let slash = rest.firstIndex(of: "/") {
            hostPort = rest[..<slash]
            let db = rest[rest.index(after: slash)...]
            if !db.isEmpty {
                guard let n = Int(db), (0...15_999).contains(n) else { throw RedisURLError("database '\(db)' in '\(Self.redacted(url))' is not a number") }
                database = n
            }
        }
        if hostPort.hasPrefix("["), let close = hostPort.firstIndex(of: "]") {
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw RedisURLError("bad port in '\(Self.redacted(url))'") }
                port = p
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(p) else {
                throw RedisURLError("bad port in '\(Self.redacted(url))'")
            }
            port = p
        } else {
            host = String(hostPort)
        }
        guard !host.isEmpty else { throw RedisURLError("no host in '\(Self.redacted(url))'") }
    }

    /// `redis://host:port/db`, without credentials (for logs and errors).
    public var displayName: String { "redis://\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }

    static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        return "redis://***@" + url[url.index(after: at)...]
    }

    static func percentDecoded(_ s: String) -> String { s.removingPercentEncodingIfPossible }
}

/// A malformed `redis://` URL.
public struct RedisURLError: Error, CustomStringConvertible, Hashable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    var removingPercentEncodingIfPossible: String {
        var bytes: [UInt8] = []
        var it = Array(utf8)[...]
        while let c = it.popFirst() {
            if c == UInt8(ascii: "%"), it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
