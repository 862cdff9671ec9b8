import Foundation
import Hummingbird
import NIOCore
import TapperCore

/// An error in the shared shape `{"error": {"code": "...", "message": "...", "field": "..."}}`.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
    }

    public static func invalid(_ e: FieldError) -> APIError {
        e.isConflict
            ? APIError(.conflict, code: "conflict", message: "\(e.field): \(e.message)", field: e.field)
            : APIError(.badRequest, code: "invalid", message: "\(e.field): \(e.message)", field: e.field)
    }

    public var description: String { message }

    /// The JSON body.
    public var body: ErrorBody { ErrorBody(error: .init(code: code, message: message, field: field)) }

    public struct ErrorBody: Codable, Sendable {
        public struct Detail: Codable, Sendable {
            public var code: String
            public var message: String
            public var field: String?
        }
        public var error: Detail
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = (try? JSONEncoder().encode(body)) ?? Data(#"{"error":{"code":"internal","message":"encoding failed"}}"#.utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension APIError {
    /// Maps a decoding failure to a 400 naming the field.
    static func decoding(_ error: any Error) -> APIError {
        switch error {
        case let e as StrictKeys.UnknownKey:
            let field = StrictKeys.fieldPath(e.path + [e.key])
            return APIError(.badRequest, code: "invalid", message: "\(field): is not a known field", field: field)
        case let e as FieldError:
            return .invalid(e)
        case DecodingError.keyNotFound(let key, let ctx):
            let field = StrictKeys.fieldPath(ctx.codingPath + [key])
            return APIError(.badRequest, code: "invalid", message: "\(field): is required", field: field)
        case DecodingError.typeMismatch(let type, let ctx):
            let field = StrictKeys.fieldPath(ctx.codingPath)
            return APIError(.badRequest, code: "invalid", message: "\(field.isEmpty ? "body" : field): must be \(describe(type))", field: field.isEmpty ? "body" : field)
        case DecodingError.valueNotFound(let type, let ctx):
            let field = StrictKeys.fieldPath(ctx.codingPath)
            return APIError(.badRequest, code: "invalid", message: "\(field): must be \(describe(type)), not null", field: field)
        case DecodingError.dataCorrupted(let ctx):
            let field = StrictKeys.fieldPath(ctx.codingPath)
            if field.isEmpty {
                return APIError(.badRequest, code: "invalid_json", message: "body: is not valid JSON", field: "body")
            }
            return APIError(.badRequest, code: "invalid", message: "\(field): has an invalid value", field: field)
        default:
            return APIError(.badRequest, code: "invalid_json", message: "body: is not valid JSON", field: "body")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        case is [String].Type, is [RouteSpec].Type, is [Any].Type: return "an array"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "an array" }
            return "an object"
        }
    }
}
