import CReadline
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// GNU readline for the interactive shell, in its callback mode: the editor waits on stdin and on
/// a wake-up pipe together, so Ctrl-C (delivered as ``interrupt()``) clears the half-typed line
/// and shows a fresh prompt instead of killing the process.
///
/// readline is one global, single-threaded C library: only one ``readLine(prompt:)`` may run at a
/// time (the shell reads one line after another), and completion runs inside it.
final class LineEditor: @unchecked Sendable {
    /// Completes the word being typed: (complete words before it, the partial word) → candidates.
    typealias Completer = @Sendable (_ before: [String], _ current: String) -> [String]

    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(completer: @escaping Completer) {
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        wakeRead = fds[0]
        wakeWrite = fds[1]
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        LineEditorGlobals.completer = completer
        tapper_rl_setup("tapper", lineEditorAttemptedCompletion)
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Replaces readline's in-memory history (Up arrow) with these entries, oldest first.
    func setHistory(_ entries: [String]) {
        clear_history()
        for e in entries { add_history(e) }
    }

    /// Ctrl-C while reading: clear the current line. Safe to call from any thread.
    func interrupt() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Reads one line with editing and completion; nil on end of input (Ctrl-D on an empty line).
    /// Blocks the calling thread.
    func readLine(prompt: String) -> String? {
        drainWakePipe()
        LineEditorGlobals.finished = false
        LineEditorGlobals.line = nil
        rl_callback_handler_install(prompt, lineEditorLineHandler)
        defer { rl_callback_handler_remove() }
        var fds = [pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        while !LineEditorGlobals.finished {
            let n = poll(&fds, 2, -1)
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if fds[1].revents != 0 {
                drainWakePipe()
                tapper_rl_clear_line()
            }
            if fds[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                rl_callback_read_char()
            }
        }
        return LineEditorGlobals.line
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
    }
}

/// State readline's C callbacks reach; touched only by the thread inside ``LineEditor/readLine(prompt:)``.
enum LineEditorGlobals {
    nonisolated(unsafe) static var finished = false
    nonisolated(unsafe) static var line: String?
    nonisolated(unsafe) static var completer: LineEditor.Completer?
    nonisolated(unsafe) static var candidates: [String] = []
    nonisolated(unsafe) static var nextCandidate = 0
}

private func lineEditorLineHandler(_ line: UnsafeMutablePointer<CChar>?) {
    LineEditorGlobals.line = line.map { String(cString: $0) }
    free(line)
    LineEditorGlobals.finished = true
}

private func lineEditorAttemptedCompletion(
    _ text: UnsafePointer<CChar>?, _ start: Int32, _ end: Int32
) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
    tapper_rl_no_default_completion()
    guard let text, let completer = LineEditorGlobals.completer, let buffer = tapper_rl_line_buffer() else { return nil }
    let typed = Array(String(cString: buffer).utf8)
    let head = String(decoding: typed.prefix(max(0, Int(start))), as: UTF8.self)
    let before = (try? ShellWords.split(head)) ?? []
    LineEditorGlobals.candidates = completer(before, String(cString: text))
    LineEditorGlobals.nextCandidate = 0
    guard !LineEditorGlobals.candidates.isEmpty else { return nil }
    return rl_completion_matches(text, lineEditorNextCandidate)
}

private func lineEditorNextCandidate(_ text: UnsafePointer<CChar>?, _ state: Int32) -> UnsafeMutablePointer<CChar>? {
    if state == 0 { LineEditorGlobals.nextCandidate = 0 }
    guard LineEditorGlobals.nextCandidate < LineEditorGlobals.candidates.count else { return nil }
    defer { LineEditorGlobals.nextCandidate += 1 }
    return strdup(LineEditorGlobals.candidates[LineEditorGlobals.nextCandidate])  // readline frees it
}
