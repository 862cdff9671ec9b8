import Testing
@testable import TapperRegistryRedis

@Suite struct RESPDecoderTests {
    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test(arguments: [
        ("+OK\r\n", RESPValue.simpleString("OK")),
        ("-ERR wrong\r\n", .error("ERR wrong")),
        (":-42\r\n", .integer(-42)),
        ("$5\r\nhello\r\n", .bulkString(Array("hello".utf8))),
        ("$0\r\n\r\n", .bulkString([])),
        ("$-1\r\n", .bulkString(nil)),
        ("*-1\r\n", .array(nil)),
        ("*0\r\n", .array([])),
        ("$4\r\na\r\nb\r\n", .bulkString(Array("a\r\nb".utf8))),
        ("*2\r\n*1\r\n:1\r\n$1\r\nx\r\n", .array([.array([.integer(1)]), .bulkString([120])])),
    ])
    func decodesEveryType(_ wire: String, _ expected: RESPValue) throws {
        let b = Self.bytes(wire)
        let result = try #require(try RESPDecoder.decode(b))
        #expect(result.value == expected)
        #expect(result.consumed == b.count)
    }

    /// Every strict prefix of a value needs more data; the whole value decodes; bytes after it
    /// are left for the next value.
    @Test func partialReadsNeedMoreDataAtEveryCut() throws {
        let wire = Self.bytes("*3\r\n$7\r\nmessage\r\n$14\r\ntapper:changes\r\n$2\r\n42\r\n")
        for cut in 0..<wire.count {
            #expect(try RESPDecoder.decode(wire[0..<cut]) == nil, "cut at \(cut)")
        }
        let twice = wire + Self.bytes("+PONG\r\n")
        let first = try #require(try RESPDecoder.decode(twice))
        #expect(first.consumed == wire.count)
        #expect(first.value.elements?.map(\.string) == ["message", "tapper:changes", "42"])
        let second = try #require(try RESPDecoder.decode(twice[first.consumed...]))
        #expect(second.value == .simpleString("PONG"))
    }

    @Test(arguments: ["?what\r\n", "$abc\r\n", "$3\r\nabcXY", ":12x\r\n", "$-5\r\n"])
    func refusesGarbage(_ wire: String) {
        #expect(throws: RESPDecoder.ProtocolError.self) { try RESPDecoder.decode(Self.bytes(wire)) }
    }

    @Test func refusesDeepNesting() {
        let wire = String(repeating: "*1\r\n", count: 100) + ":1\r\n"
        #expect(throws: RESPDecoder.ProtocolError.self) { try RESPDecoder.decode(Self.bytes(wire)) }
    }

    @Test func encodesCommandsAsArraysOfBulkStrings() throws {
        let wire = RESPEncoder.command(["SET", "k", "vé"])
        #expect(wire == Self.bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n"))
        let back = try #require(try RESPDecoder.decode(wire))
        #expect(back.value.elements?.map(\.string) == ["SET", "k", "vé"])
    }
}

@Suite struct StoreURLTests {
    @Test func parsesRedisURLs() throws {
        let plain = try RedisConfiguration(url: "redis://127.0.0.1:6380")
        #expect(plain.host == "127.0.0.1" && plain.port == 6380 && plain.database == 0 && plain.password == nil)
        let full = try RedisConfiguration(url: "redis://app:s%40cret@cache.local:7000/3")
        #expect(full.username == "app" && full.password == "s@cret" && full.host == "cache.local" && full.port == 7000 && full.database == 3)
        #expect(!full.displayName.contains("cret"))
        let passwordOnly = try RedisConfiguration(url: "redis://:pw@h")
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw" && passwordOnly.port == 6379)
        #expect(throws: RedisURLError.self) { try RedisConfiguration(url: "redis://h:99999") }
        #expect(throws: RedisURLError.self) { try RedisConfiguration(url: "redis://h/db") }
        #expect(throws: RedisURLError.self) { try RedisConfiguration(url: "http://h") }
    }

    @Test func redisReconnectBackoffGrowsAndIsCapped() {
        #expect(RedisClient.backoff(failures: 1) == .milliseconds(50))
        #expect(RedisClient.backoff(failures: 2) == .milliseconds(100))
        #expect(RedisClient.backoff(failures: 5) == .milliseconds(800))
        #expect(RedisClient.backoff(failures: 50) == .seconds(2))
    }
}
