import Foundation

/// Wall-clock time in nanoseconds since the epoch (span timestamps, shared rate-limit windows).
/// Through Foundation: `clock_gettime` with a `timespec` compiles in debug builds but, in
/// release builds with MemberImportVisibility, asks for NIO's internal CNIOLinux module.
enum WallClock {
    static func nanoseconds() -> UInt64 {
        UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
    }
}
