/// Aligned plain-text tables for human output.
enum Table {
    /// Aligns columns; `color` may decorate a padded cell (escape codes do not count as width).
    static func render(_ rows: [[String]], color: (Int, String) -> String = { $1 }) -> String {
        guard let first = rows.first else { return "" }
        var widths = Array(repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        var out = ""
        for (rowIndex, r) in rows.enumerated() {
            var line = ""
            for (i, c) in r.enumerated() {
                let cell = i == r.count - 1 ? c : c.padding(to: widths[i] + 2)
                line += rowIndex == 0 ? cell : color(i, cell)
            }
            out += line + "\n"
        }
        return out
    }

    static func age(_ seconds: Double) -> String {
        if seconds < 10 { return String(format1: seconds) + "s" }
        if seconds < 120 { return "\(Int(seconds))s" }
        if seconds < 7200 { return "\(Int(seconds / 60))m" }
        return "\(Int(seconds / 3600))h"
    }
}

extension String {
    func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
