/// Small character-level checks shared by the models' validation.
enum TextRules {
    /// True when the string contains a control character (CR, LF, NUL, DEL, …), which could
    /// inject headers or break log lines wherever the value is written later.
    static func hasControlCharacters(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || ($0.value >= 0x80 && $0.value < 0xA0) }
    }

    /// Checks a free-text field: no control characters and at most `maxLength` characters
    /// (Unicode scalars, which is what JSON Schema's `maxLength` counts).
    static func checkText(_ s: String, field: String, maxLength: Int) throws(FieldError) {
        if hasControlCharacters(s) {
            throw FieldError(field: field, message: "must not contain control characters such as CR or LF")
        }
        if s.utf8.count > maxLength, s.unicodeScalars.count > maxLength {
            throw FieldError(field: field, message: "must be at most \(maxLength) characters long")
        }
    }

    /// RFC 9110 `tchar`, the characters of an HTTP token such as a method name.
    static func isTokenCharacter(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        // RFC 9110 tchar, spelled out: a string's `contains` here cost a visible share of the
        // gateway's per-request CPU (every `-` in a header name took that path).
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func isToken(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy(isTokenCharacter)
    }
}
