/// A failure talking to a registry or gateway, phrased for the person at the terminal.
public struct TapperClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing answered at the address.
        case unreachable
        /// The server answered with an error in the shared shape.
        case api(status: Int, code: String, field: String?)
        /// The answer could not be understood.
        case invalidResponse
        /// The request took too long.
        case timeout
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// The HTTP status for API errors.
    public var status: Int? {
        if case .api(let s, _, _) = kind { return s }
        return nil
    }
}
