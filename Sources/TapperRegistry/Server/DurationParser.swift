/// Parses Consul-style durations: `500ms`, `30s`, `5m`, `1h`, or bare seconds (`2.5`).
public enum DurationParser {
    public static func parse(_ s: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            let number = s.dropLast(suffix.count)
            // "ms" also ends in "s": only accept a purely numeric prefix.
            guard let v = Double(number), v.isFinite, v >= 0 else { continue }
            return .milliseconds(Int64((v * scale * 1000).rounded()))
        }
        guard let v = Double(s), v.isFinite, v >= 0 else { return nil }
        return .milliseconds(Int64((v * 1000).rounded()))
    }
}
