import Dispatch
import Testing
import TapperTesting
@testable import TapperGateway

#if canImport(Glibc)
import Glibc
#endif

/// The access log never blocks a reactor: a stalled reader costs dropped lines, each counted.
@Suite struct AccessLogWriterTests {
    static func line(_ i: Int) -> String {
        "method=GET path=/users/\(i) status=200 service=users route=/users/{id} duration_ms=0.1 request_id=r\(i)"
    }

    @Test func aStalledReaderMakesTheLogDropAndCountLinesWithoutBlockingTheReactor() async throws {
        try await withReactor { reactor in
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0)
            let (readEnd, writeEnd) = (fds[0], fds[1])
            defer { close(readEnd) }
            // A blocking pipe nobody reads: once its 64 KiB are full, write(2) blocks.
            let writer = AccessLogWriter(fd: writeEnd, capacity: 256 * 1024)
            let lines = 20_000
            // Should appending block after all, a reader starts after a while so the test
            // fails on the time it took instead of hanging.
            let finished = Locked(false)
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(8)) {
                if !finished.get() { _ = readSocket(readEnd, timeout: .seconds(30)) }
            }
            let start = ContinuousClock.now
            await reactor.submit {
                let log = AccessLogBuffer(reactor: reactor, writer: writer)
                for i in 0..<lines { log.append(Self.line(i)) }
                log.flush()
            }
            let took = ContinuousClock.now - start
            finished.set(true)
            #expect(took < .seconds(4), "appending waited for the log's reader (\(took))")
            let dropped = writer.droppedLines
            #expect(dropped > 0)
            #expect(GatewayMetrics(accessLog: writer).text().contains("\ntapper_access_log_dropped_total \(dropped)\n"))

            // Nothing is lost uncounted: once a reader catches up, written + dropped = appended,
            // and what was written is whole lines in order.
            let reader = Task { await onThread { readSocket(readEnd, timeout: .seconds(30)) } }
            try await poll("the writer has written everything it queued", timeout: .seconds(20)) { writer.queuedBytes == 0 }
            close(writeEnd)
            let read = await reader.value
            let eof = read.eof
            #expect(eof, "no end of stream")
            let written = read.bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }
            #expect(written.count > 0)
            #expect(written.count + writer.droppedLines == lines)
            let numbers = written.compactMap { line in line.split(separator: " ").last.flatMap { Int($0.dropFirst("request_id=r".count)) } }
            #expect(numbers.count == written.count, "a written line was cut")
            #expect(numbers == numbers.sorted())
            #expect(written.allSatisfy { $0 == Self.line(Int($0.split(separator: " ").last!.dropFirst("request_id=r".count))!) })
        }
    }

    @Test func linesAreWrittenWhileTheReaderKeepsUp() async throws {
        try await withReactor { reactor in
            var fds: [Int32] = [-1, -1]
            try #require(pipe(&fds) == 0)
            let (readEnd, writeEnd) = (fds[0], fds[1])
            defer { close(readEnd) }
            let writer = AccessLogWriter(fd: writeEnd, capacity: 1 << 20)
            let reader = Task { await onThread { readSocket(readEnd, timeout: .seconds(30)) } }
            await reactor.submit {
                let log = AccessLogBuffer(reactor: reactor, writer: writer)
                for i in 0..<100 { log.append(Self.line(i)) }
                log.flush()
            }
            #expect(await writer.drain(timeout: .seconds(10)))
            close(writeEnd)
            let read = await reader.value
            let expected = (0..<100).map { Self.line($0) + "\n" }.joined()
            #expect(String(decoding: read.bytes, as: UTF8.self) == expected)
            #expect(writer.droppedLines == 0)
        }
    }
}
