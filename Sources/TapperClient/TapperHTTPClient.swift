import AsyncHTTPClient
import NIOCore

/// The process-wide HTTP client of Tapper's own tools.
///
/// Unlike `HTTPClient.shared` it does not keep retrying a refused connection until the request
/// deadline, so "nothing is listening" is reported at once instead of after the timeout.
public enum TapperHTTPClient {
    public static let shared: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(2)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}
