/// A validation failure that names the offending field.
///
/// Every model in Tapper validates itself and throws a `FieldError` whose ``field`` is the
/// JSON path of the bad value (`routes[2].path`, `url`), so an HTTP 400 or a CLI message can
/// tell the user exactly what to fix.
public struct FieldError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The JSON path of the offending value, e.g. `routes[0].path`.
    public var field: String
    /// What is wrong with it, as one sentence without the field name.
    public var message: String
    /// The value is well formed but clashes with another one (a route claimed twice): HTTP 409
    /// rather than 400.
    public var isConflict: Bool

    public init(field: String, message: String, isConflict: Bool = false) {
        self.field = field
        self.message = message
        self.isConflict = isConflict
    }

    /// Prefixes the field path, so nested validators can report full paths.
    public func nested(under parent: String) -> FieldError {
        let joined: String
        if field.isEmpty {
            joined = parent
        } else if field.hasPrefix("[") {
            joined = parent + field
        } else {
            joined = parent + "." + field
        }
        return FieldError(field: joined, message: message, isConflict: isConflict)
    }

    public var description: String { "\(field): \(message)" }
}
