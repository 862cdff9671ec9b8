import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Colour for human output: only on a terminal, never with NO_COLOR set.
struct Style {
    let color: Bool

    static func forStandardOutput() -> Style {
        let env = ProcessInfo.processInfo.environment
        let noColor = env["NO_COLOR"].map { !$0.isEmpty } ?? false
        return Style(color: isatty(STDOUT_FILENO) == 1 && !noColor && env["TERM"] != "dumb")
    }

    func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    func green(_ s: String) -> String { paint(s, "32") }
    func red(_ s: String) -> String { paint(s, "31") }
    func yellow(_ s: String) -> String { paint(s, "33") }
    func bold(_ s: String) -> String { paint(s, "1") }
}
