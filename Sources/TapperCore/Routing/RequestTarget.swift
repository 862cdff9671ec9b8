/// Pieces of an origin-form request target (`/path?query`).
public enum RequestTarget {
    /// The path: everything before the first `?` (the whole target when there is none).
    public static func path(of target: String) -> String {
        guard let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return target }
        return String(target[..<q])
    }
}
