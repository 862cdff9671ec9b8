/// How many CPUs the process may really use: the CPUs in its affinity mask (`taskset`,
/// `cpuset`), capped by every CFS quota on its cgroup path (`docker --cpus`, systemd
/// `CPUQuota=`), rounded up. A container limited to one CPU on a 64-core host gets 1, not 64.
///
/// Pure parsing and arithmetic; `TapperGateway` reads the files and the affinity mask.
public enum CPUBudget {
    /// A CFS bandwidth limit: `quota` microseconds of CPU time per `period`.
    public struct Quota: Hashable, Sendable {
        public var quota: Int
        public var period: Int
        public init(quota: Int, period: Int) {
            self.quota = quota
            self.period = period
        }
        /// Whole CPUs, rounded up (1.5 CPUs -> 2: a thread per started CPU keeps the quota usable).
        public var cpus: Int { max(1, (quota + period - 1) / period) }
    }

    /// The CPUs to plan threads for: the affinity count, capped by the tightest quota.
    public static func usableCPUs(affinity: Int, quotas: [Quota]) -> Int {
        let cap = quotas.map(\.cpus).min() ?? Int.max
        return max(1, min(max(affinity, 1), cap))
    }

    /// A CPU list such as `0-3,8,10-11` (`Cpus_allowed_list` in `/proc/self/status`,
    /// `cpuset.cpus`): how many CPUs it names.
    public static func countCPUList(_ text: String) -> Int? {
        var count = 0
        for item in text.split(separator: ",") {
            let range = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingSpace()) }
            switch range.count {
            case 1:
                guard range[0] != nil else { return nil }
                count += 1
            case 2:
                guard let a = range[0], let b = range[1], b >= a else { return nil }
                count += b - a + 1
            default:
                return nil
            }
        }
        return count > 0 ? count : nil
    }

    /// The `Cpus_allowed_list` of `/proc/self/status`: the process's affinity mask.
    public static func affinityCount(procSelfStatus: String) -> Int? {
        for line in procSelfStatus.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return countCPUList(String(line.dropFirst("Cpus_allowed_list:".count)))
        }
        return nil
    }

    /// cgroup v2 `cpu.max`: `"max 100000"` (no limit: nil) or `"50000 100000"`.
    public static func parseCPUMax(_ text: String) -> Quota? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard parts.count == 2, let quota = Int(parts[0]), let period = Int(parts[1]), quota > 0, period > 0 else { return nil }
        return Quota(quota: quota, period: period)
    }

    /// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (quota -1: no limit).
    public static func parseCFS(quota: String, period: String) -> Quota? {
        guard let q = Int(quota.trimmingSpace()), let p = Int(period.trimmingSpace()), q > 0, p > 0 else { return nil }
        return Quota(quota: q, period: p)
    }

    /// The cgroup v2 path of the process in `/proc/self/cgroup` (the `0::/path` line).
    public static func cgroupV2Path(procSelfCgroup: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[0] == "0", parts[1].isEmpty { return String(parts[2]) }
        }
        return nil
    }

    /// The cgroup v1 path of the `cpu` controller in `/proc/self/cgroup` (`N:cpu,cpuacct:/path`).
    public static func cgroupV1CPUPath(procSelfCgroup: String) -> String? {
        for line in procSelfCgroup.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if parts.count == 3, parts[1].split(separator: ",").contains("cpu") { return String(parts[2]) }
        }
        return nil
    }

    /// A path and each of its ancestors up to the root: `/a/b` -> `["/a/b", "/a", ""]` (a limit
    /// anywhere above the process applies to it).
    public static func selfAndAncestors(_ path: String) -> [String] {
        var out: [String] = []
        var segments = path.split(separator: "/").map(String.init)
        while true {
            out.append(segments.isEmpty ? "" : "/" + segments.joined(separator: "/"))
            if segments.isEmpty { break }
            segments.removeLast()
        }
        return out
    }
}

extension StringProtocol {
    fileprivate func trimmingSpace() -> Substring {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s.removeLast() }
        return s
    }
}
