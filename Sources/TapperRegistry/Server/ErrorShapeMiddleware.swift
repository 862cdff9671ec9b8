import Hummingbird
import Logging
import TapperCore

/// Renders every failure in the shared error shape: Hummingbird's own errors (no route, body
/// too large, unsupported method) and anything unexpected (a 500 that reveals no internals).
/// A known path asked with a method it does not serve gets 405 with `Allow` (the router itself
/// only knows "not found").
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowed: AllowedMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as any HTTPResponseError {
            let headers = (error as? HTTPError)?.headers ?? [:]
            switch error.status {
            case .notFound:
                if let methods = allowed.methods(for: request.uri.path), !methods.contains(request.method.rawValue) {
                    throw APIError(
                        .methodNotAllowed, code: "method_not_allowed",
                        message: "method \(request.method) is not allowed here; allowed: \(methods.joined(separator: ", "))",
                        headers: [.allow: methods.joined(separator: ", ")]
                    )
                }
                throw APIError(.notFound, code: "not_found", message: "no such endpoint: \(request.method) \(request.uri.path)")
            case .contentTooLarge:
                throw APIError(.contentTooLarge, code: "too_large", message: "request body is too large", field: "body")
            case .methodNotAllowed:
                throw APIError(.methodNotAllowed, code: "method_not_allowed", message: "method \(request.method) is not allowed here", headers: headers)
            default:
                throw APIError(error.status, code: "error", message: (error as? HTTPError)?.body ?? error.status.reasonPhrase, headers: headers)
            }
        } catch let error as RegistryBackendError {
            switch error.kind {
            case .invalid(let e): throw APIError.invalid(e)
            case .conflict(let field, let route, let owner):
                throw APIError(.conflict, code: "conflict", message: "route \(route) is already owned by service '\(owner)'", field: field)
            case .unavailable:
                throw APIError(.serviceUnavailable, code: "backend_unavailable", message: error.description, headers: [.retryAfter: "1"])
            }
        } catch is CancellationError {
            throw APIError(.serviceUnavailable, code: "shutting_down", message: "the registry is shutting down")
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(error)"])
            throw APIError(.internalServerError, code: "internal", message: "internal error")
        }
    }
}
