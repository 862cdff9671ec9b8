import Foundation

/// Splits a shell line into words the way a POSIX shell would for the simple cases a command
/// line needs: blanks separate words, '…' quotes literally, "…" quotes with \" and \\ escapes,
/// and a backslash outside quotes escapes the next character. No variables, globs or pipes.
enum ShellWords {
    struct UnterminatedQuote: Error, CustomStringConvertible {
        let quote: Character
        var description: String { "unterminated \(quote) quote" }
    }

    static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character? = nil
        var escaped = false
        for ch in line {
            if escaped {
                current.append(ch)
                escaped = false
                continue
            }
            switch quote {
            case "'":
                if ch == "'" { quote = nil } else { current.append(ch) }
            case "\"":
                if ch == "\"" { quote = nil } else if ch == "\\" { escaped = true } else { current.append(ch) }
            default:
                if ch == " " || ch == "\t" || ch == "\n" || ch == "\r" {
                    if inWord { words.append(current); current = ""; inWord = false }
                } else if ch == "'" || ch == "\"" {
                    quote = ch
                    inWord = true
                } else if ch == "\\" {
                    escaped = true
                    inWord = true
                } else {
                    current.append(ch)
                    inWord = true
                }
            }
        }
        if let quote { throw UnterminatedQuote(quote: quote) }
        if escaped { current.append("\\") }
        if inWord { words.append(current) }
        return words
    }

    /// Quotes a word so that ``split(_:)`` gives it back unchanged (for completions and history).
    static func quote(_ word: String) -> String {
        let plain = !word.isEmpty && word.allSatisfy { !" \t\n'\"\\".contains($0) }
        return plain ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
