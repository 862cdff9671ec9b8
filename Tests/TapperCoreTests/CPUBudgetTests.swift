import Testing
import TapperCore

@Suite struct CPUBudgetTests {
    @Test func cpuListsAndAffinity() {
        #expect(CPUBudget.countCPUList("0-3,8,10-11") == 7)
        #expect(CPUBudget.countCPUList("5") == 1)
        #expect(CPUBudget.countCPUList("0-1\n") == 2)
        #expect(CPUBudget.countCPUList("3-1") == nil)
        #expect(CPUBudget.countCPUList("") == nil)
        #expect(CPUBudget.countCPUList("a-b") == nil)
        let status = "Name:\ttapper\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed_list:\t0\n"
        #expect(CPUBudget.affinityCount(procSelfStatus: status) == 2)
        #expect(CPUBudget.affinityCount(procSelfStatus: "Name: x\n") == nil)
    }

    @Test func quotaFiles() {
        #expect(CPUBudget.parseCPUMax("max 100000\n") == nil)
        #expect(CPUBudget.parseCPUMax("150000 100000\n") == CPUBudget.Quota(quota: 150000, period: 100000))
        #expect(CPUBudget.parseCPUMax("150000 100000")?.cpus == 2, "1.5 CPUs round up")
        #expect(CPUBudget.parseCPUMax("20000 100000")?.cpus == 1, "a fraction of a CPU is still one thread")
        #expect(CPUBudget.parseCPUMax("garbage") == nil)
        #expect(CPUBudget.parseCFS(quota: "-1\n", period: "100000\n") == nil)
        #expect(CPUBudget.parseCFS(quota: "200000\n", period: "100000\n")?.cpus == 2)
    }

    @Test func cgroupPaths() {
        let v2 = "0::/system.slice/tapper.service\n"
        #expect(CPUBudget.cgroupV2Path(procSelfCgroup: v2) == "/system.slice/tapper.service")
        #expect(CPUBudget.selfAndAncestors("/system.slice/tapper.service") == ["/system.slice/tapper.service", "/system.slice", ""])
        #expect(CPUBudget.selfAndAncestors("/") == [""])
        let v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
        #expect(CPUBudget.cgroupV2Path(procSelfCgroup: v1) == nil)
        #expect(CPUBudget.cgroupV1CPUPath(procSelfCgroup: v1) == "/docker/abc")
    }

    @Test func theTightestLimitWins() {
        // A container limited to one CPU on a 64-core host.
        #expect(CPUBudget.usableCPUs(affinity: 64, quotas: [CPUBudget.Quota(quota: 100000, period: 100000)]) == 1)
        // A parent slice's quota below the service's own.
        #expect(CPUBudget.usableCPUs(affinity: 8, quotas: [.init(quota: 400000, period: 100000), .init(quota: 250000, period: 100000)]) == 3)
        // taskset to 2 CPUs under a 4-CPU quota.
        #expect(CPUBudget.usableCPUs(affinity: 2, quotas: [.init(quota: 400000, period: 100000)]) == 2)
        #expect(CPUBudget.usableCPUs(affinity: 4, quotas: []) == 4)
        #expect(CPUBudget.usableCPUs(affinity: 0, quotas: []) == 1)
    }
}
