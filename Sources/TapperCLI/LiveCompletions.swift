import ArgumentParser
import Foundation
import TapperClient
import TapperCore

/// Dynamic shell completion from the live registry: service names and instance ids. The shell
/// calls the binary back while the user presses TAB, so every lookup has a short timeout and
/// answers nothing (silently) when the registry is unreachable.
enum LiveCompletions {
    static let timeout: Duration = .milliseconds(300)

    /// The registry to ask: `--registry` among the words typed so far, else the environment.
    static func registryURL(_ words: [String]) -> String {
        if let i = words.firstIndex(of: "--registry"), i + 1 < words.count { return words[i + 1] }
        if let w = words.first(where: { $0.hasPrefix("--registry=") }) { return String(w.dropFirst("--registry=".count)) }
        return RegistryOptions.environmentURL
    }

    static func catalog(_ words: [String]) async -> [(service: String, instances: [String])] {
        let client = RegistryClient(baseURL: registryURL(words), timeout: timeout)
        guard let snapshot = try? await client.catalog() else { return [] }
        return snapshot.services.map { ($0.name, $0.instances.map(\.instanceID)) }
    }

    static let serviceNames: CompletionKind = .custom { words, _, prefix in
        await catalog(words).map(\.service).filter { $0.hasPrefix(prefix) }
    }

    /// Instance ids of the service named just before the word being completed.
    static let instanceIDs: CompletionKind = .custom { words, index, prefix in
        let service = index > 0 && index - 1 < words.count ? words[index - 1] : ""
        return await catalog(words).filter { $0.service == service }.flatMap(\.instances).filter { $0.hasPrefix(prefix) }
    }
}
