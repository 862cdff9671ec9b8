import Testing
import TapperRegistryEtcd

@Suite struct EtcdConfigurationTests {
    @Test func parsesEndpointsAndPrefix() throws {
        let one = try EtcdConfiguration(url: "etcd://127.0.0.1:2379")
        #expect(one.endpoints == ["http://127.0.0.1:2379"])
        #expect(one.prefix == "/tapper/")
        let many = try EtcdConfiguration(url: "etcd://a:1,b:2,c:3/teams/x")
        #expect(many.endpoints == ["http://a:1", "http://b:2", "http://c:3"])
        #expect(many.prefix == "/teams/x/")
        #expect(many.displayName == "etcd://a:1,b:2,c:3/teams/x/")
        #expect(throws: EtcdURLError.self) { try EtcdConfiguration(url: "etcd://a") }
        #expect(throws: EtcdURLError.self) { try EtcdConfiguration(url: "etcd://a:1,:2") }
        #expect(throws: EtcdURLError.self) { try EtcdConfiguration(url: "redis://a:1") }
    }
}
