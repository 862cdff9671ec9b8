#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TapperCore

/// The memory backend's on-disk snapshot: `DIR/catalog.json`, replaced atomically.
struct SnapshotFile: Sendable {
    let directory: String
    var path: String { directory + "/catalog.json" }

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func load() throws -> CatalogSnapshot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try JSONDecoder().decode(CatalogSnapshot.self, from: data)
    }

    /// Writes a temporary file, fsyncs it, renames it over the old one and fsyncs the directory,
    /// so a crash leaves either the old or the new snapshot, never a torn one.
    func save(_ snapshot: CatalogSnapshot) throws {
        var clean = snapshot
        for s in clean.services.indices {
            for i in clean.services[s].instances.indices {
                clean.services[s].instances[i].heartbeatAgeSeconds = nil
                clean.services[s].instances[i].expiresInSeconds = nil
            }
        }
        let data = try JSONEncoder().encode(clean)
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(errno: errno, operation: "open \(tmp)") }
        var ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let savedErrno = errno
        close(fd)
        guard ok else { throw POSIXError(errno: savedErrno, operation: "write \(tmp)") }
        guard rename(tmp, path) == 0 else { throw POSIXError(errno: errno, operation: "rename \(tmp)") }
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

struct POSIXError: Error, CustomStringConvertible {
    var errno: Int32
    var operation: String
    init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }
    var description: String { "\(operation): \(String(cString: strerror(errno)))" }
}
