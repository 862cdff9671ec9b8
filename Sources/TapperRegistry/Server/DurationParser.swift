/// Parses Consul-style durations: `500ms`, `30s`, `5m`, `1h`, or bare seconds (`2.5`).
///
/// The grammar is exactly `[0-9]+(\.[0-9]+)?(ms|s|m|h)?`, the pattern the OpenAPI document
/// gives for `wait`: no sign, exponent, hex or spaces, so the document and the server agree on
/// what is accepted. Values too large to represent are capped at about 31 years (any bound the
/// caller applies is far below that).
public enum DurationParser {
    /// The pattern the OpenAPI document states for a duration.
    public static let pattern = #"^[0-9]+(\.[0-9]+)?(ms|s|m|h)?$"#

    public static func parse(_ s: String) -> Duration? {
        var number = Substring(s)
        var scale = 1.0
        for (suffix, unitScale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)] where number.hasSuffix(suffix) {
            number = number.dropLast(suffix.count)
            scale = unitScale
            break
        }
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        func digits(_ p: Substring) -> Bool { !p.isEmpty && p.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        guard parts.allSatisfy(digits), let value = Double(number), value.isFinite else { return nil }
        let millis = min(value * scale * 1000, 1e12)
        return .milliseconds(Int64(millis.rounded()))
    }
}
