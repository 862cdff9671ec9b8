import Logging
import ServiceLifecycle
import TapperClient
import TapperCore

/// Heartbeats a registration every TTL/3, registers again when the registry answers 404, and
/// deregisters on graceful shutdown. Registry outages are logged once and retried.
struct KeepAlive: Service {
    let client: RegistryClient
    let service: String
    let instanceID: String
    let registration: ServiceRegistration
    let logger: Logger
    /// Told about the first registration (to print it).
    let onRegistered: @Sendable (InstanceRecord, Bool) throws -> Void

    var interval: Duration { .milliseconds(Int64(registration.ttlSeconds * 1000 / 3)) }

    func run() async throws {
        let (record, created) = try await client.register(service: service, instanceID: instanceID, registration: registration)
        try onRegistered(record, created)
        await cancelWhenGracefulShutdown {
            var failing = false
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                do {
                    if try await !client.heartbeat(service: service, instanceID: instanceID) {
                        _ = try await client.register(service: service, instanceID: instanceID, registration: registration)
                        logger.notice("the registry had forgotten \(service)/\(instanceID); registered it again")
                    }
                    if failing {
                        logger.notice("registry at \(client.authority) is reachable again")
                        failing = false
                    }
                } catch is CancellationError {
                    break
                } catch {
                    if !failing { logger.warning("heartbeat failed, will keep trying: \(error)") }
                    failing = true
                }
            }
        }
        do {
            _ = try await client.deregister(service: service, instanceID: instanceID)
            print("deregistered \(service)/\(instanceID)")
        } catch {
            logger.error("could not deregister \(service)/\(instanceID): \(error)")
        }
    }
}
