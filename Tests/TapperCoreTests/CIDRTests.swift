import Testing
import TapperCore

@Suite struct CIDRTests {
    @Test func parsesAndMatchesIPv4AndIPv6() throws {
        let net = try CIDR(parsing: "10.1.0.0/16")
        #expect(net.contains("10.1.200.3"))
        #expect(!net.contains("10.2.0.1"))
        #expect(net.contains("::ffff:10.1.2.3"), "IPv4-mapped IPv6 counts as IPv4")
        #expect(!net.contains("not an ip"))
        #expect(net.description == "10.1.0.0/16")
        // Host bits are masked off; a bare address is a /32 or /128.
        #expect(try CIDR(parsing: "192.168.7.9/24").description == "192.168.7.0/24")
        #expect(try CIDR(parsing: "127.0.0.1").contains("127.0.0.1"))
        #expect(!(try CIDR(parsing: "127.0.0.1")).contains("127.0.0.2"))
        let v6 = try CIDR(parsing: "fd00::/8")
        #expect(v6.contains("fd12:3456::1"))
        #expect(!v6.contains("fe80::1"))
        #expect(!v6.contains("10.0.0.1"))
        #expect(try CIDR(parsing: "0.0.0.0/0").contains("8.8.8.8"))
        #expect(try CIDR(parsing: "10.0.0.0/9").contains("10.127.255.255"))
        #expect(!(try CIDR(parsing: "10.0.0.0/9")).contains("10.128.0.0"))
    }

    @Test func rejectsNonsenseNamingTheField() {
        for bad in ["10.0.0.0/33", "::1/129", "10.0.0/8", "example.com", "10.0.0.0/-1", "10.0.0.0/", ""] {
            #expect(throws: FieldError.self, "\(bad)") { try CIDR(parsing: bad, field: "--trusted-proxies") }
        }
        do {
            _ = try CIDR(parsing: "nope", field: "--trusted-proxies")
        } catch {
            #expect(error.field == "--trusted-proxies")
        }
    }
}
