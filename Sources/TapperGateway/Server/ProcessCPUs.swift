import Foundation
import TapperCore

/// The CPUs this process may use, read from Linux (see ``CPUBudget``): the affinity mask from
/// `/proc/self/status`, and the CFS quotas of its cgroup and every ancestor (v2 `cpu.max`, or
/// v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`). What `--threads 0` starts one I/O thread per.
enum ProcessCPUs {
    static func usable(cgroupRoot: String = "/sys/fs/cgroup") -> Int {
        let online = ProcessInfo.processInfo.activeProcessorCount
        let affinity = read("/proc/self/status").flatMap(CPUBudget.affinityCount(procSelfStatus:)) ?? online
        return CPUBudget.usableCPUs(affinity: affinity, quotas: quotas(cgroupRoot: cgroupRoot))
    }

    static func quotas(cgroupRoot: String) -> [CPUBudget.Quota] {
        guard let cgroup = read("/proc/self/cgroup") else { return [] }
        if let path = CPUBudget.cgroupV2Path(procSelfCgroup: cgroup), FileManager.default.fileExists(atPath: cgroupRoot + "/cgroup.controllers") {
            return CPUBudget.selfAndAncestors(path).compactMap { dir in read(cgroupRoot + dir + "/cpu.max").flatMap(CPUBudget.parseCPUMax) }
        }
        if let path = CPUBudget.cgroupV1CPUPath(procSelfCgroup: cgroup) {
            for controller in ["cpu", "cpu,cpuacct"] {
                let base = cgroupRoot + "/" + controller
                guard FileManager.default.fileExists(atPath: base) else { continue }
                return CPUBudget.selfAndAncestors(path).compactMap { dir in
                    guard let q = read(base + dir + "/cpu.cfs_quota_us"), let p = read(base + dir + "/cpu.cfs_period_us") else { return nil }
                    return CPUBudget.parseCFS(quota: q, period: p)
                }
            }
        }
        return []
    }

    private static func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}
