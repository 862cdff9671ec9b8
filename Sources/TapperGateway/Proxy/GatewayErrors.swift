/// JSON bodies of gateway-generated errors, in the shared shape
/// `{"error": {"code": "...", "message": "..."}}`.
enum GatewayErrors {
    static func body(code: String, message: String) -> String {
        #"{"error":{"code":"\#(code)","message":"\#(escape(message))"}}"#
    }

    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if c.value < 0x20 {
                    out += "\\u00" + String(c.value, radix: 16).leftPadded(to: 2)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
