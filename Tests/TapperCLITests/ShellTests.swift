import Foundation
import Testing
import TapperTesting
@testable import TapperCLI

@Suite struct ShellWordsTests {
    @Test func splitsLikeAShell() throws {
        #expect(try ShellWords.split("route test GET '/users/{id}'  --send") == ["route", "test", "GET", "/users/{id}", "--send"])
        #expect(try ShellWords.split(#"service register a --route "GET /x y" -d 'it''s'"#) == ["service", "register", "a", "--route", "GET /x y", "-d", "its"])
        #expect(try ShellWords.split(#"a\ b "c\"d" ''"#) == ["a b", "c\"d", ""])
        #expect(try ShellWords.split("   ") == [])
        #expect(throws: ShellWords.UnterminatedQuote.self) { try ShellWords.split("route test GET '/x") }
    }

    @Test func quoteRoundTrips() throws {
        for word in ["plain", "two words", "it's", #"back\slash"#, ""] {
            #expect(try ShellWords.split(ShellWords.quote(word)) == [word])
        }
    }
}

@Suite struct ShellCompleterTests {
    let completer = ShellCompleter(tree: .tapper)
    let catalog = LiveCatalog(services: ["users": ["u-1", "u-2"], "orders": ["o-1"]], routePaths: ["/orders/{id}", "/users/", "/users/{user_id}"])

    func complete(_ before: [String], _ current: String, expectLive: Bool = false) -> [String] {
        var asked = false
        let result = completer.complete(before: before, current: current) { asked = true; return catalog }
        #expect(asked == expectLive, "live catalog \(asked ? "fetched" : "not fetched") for \(before) '\(current)'")
        return result
    }

    @Test func commandsAndSubcommandsComeFromTheParser() {
        #expect(complete([], "sta") == ["status"])
        #expect(Set(complete([], "")).isSuperset(of: ["registry", "gateway", "service", "status", "route", "shell", "help", "exit", "quit", "use", "watch"]))
        #expect(complete(["service"], "") == ["register", "deregister", "list"])
        #expect(complete(["service"], "l") == ["list"])
        #expect(complete(["help"], "ro") == ["route"])
        #expect(complete(["use"], "") == ["registry", "gateway"])
        #expect(complete(["watch", "-n", "1"], "sta") == ["status"])
        #expect(complete(["exit"], "") == [])
    }

    @Test func optionsComeFromTheParser() {
        #expect(complete(["status"], "--se") == ["--service"])
        #expect(complete(["route", "test"], "--s") == ["--send"])
        #expect(Set(complete(["gateway", "serve"], "--load")) == ["--load-balancer"])
    }

    @Test func liveNamesIdsAndPaths() {
        #expect(complete(["status", "--service"], "u", expectLive: true) == ["users"])
        #expect(complete(["service", "deregister"], "", expectLive: true) == ["orders", "users"])
        #expect(complete(["service", "deregister", "users"], "", expectLive: true) == ["u-1", "u-2"])
        #expect(complete(["route", "test"], "g") == ["GET"])
        #expect(complete(["route", "test", "GET"], "/us", expectLive: true) == ["/users/", "/users/{user_id}"])
        // An option's value is skipped when counting positionals.
        #expect(complete(["route", "test", "--gateway", "http://x", "GET"], "/o", expectLive: true) == ["/orders/{id}"])
        #expect(complete(["route", "test", "GET", "/x"], "") == [])
    }
}

@Suite struct ShellHistoryTests {
    @Test func collapsesDuplicatesAndStaysBounded() {
        var h = ShellHistory(limit: 3)
        let first = h.add("status")
        let repeated = h.add("status")
        let blank = h.add("   ")
        #expect(first && !repeated && !blank)
        h.add("service list")
        h.add("status")  // moves to the end
        #expect(h.entries == ["service list", "status"])
        h.add("a")
        h.add("b")
        #expect(h.entries == ["status", "a", "b"])
    }

    @Test func survivesARestartInAPrivateFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapper-history-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/tapper/history"
        var h = ShellHistory()
        h.add("status --json")
        h.add("route test GET /users/1")
        try h.save(path: path)
        #expect(ShellHistory.load(path: path).entries == ["status --json", "route test GET /users/1"])
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o077 == 0)
        #expect(ShellHistory.defaultPath(environment: ["XDG_STATE_HOME": "/s", "HOME": "/h"]) == "/s/tapper/history")
        #expect(ShellHistory.defaultPath(environment: ["HOME": "/h"]) == "/h/.local/state/tapper/history")
    }
}

@Suite struct LiveCatalogCacheTests {
    /// A registry that accepts connections and never answers must not hold TAB for long.
    @Test func neverWaitsLongForASilentRegistry() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &addr) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                guard bind(fd, sa, len) == 0, listen(fd, 16) == 0, getsockname(fd, sa, &len) == 0 else { throw TestFailure("cannot listen") }
            }
        }
        let port = UInt16(bigEndian: addr.sin_port)
        let cache = LiveCatalogCache(maxWait: .milliseconds(200)) { "http://127.0.0.1:\(port)" }
        let start = ContinuousClock.now
        #expect(cache.get() == LiveCatalog())
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(150) && waited < .milliseconds(700), "waited \(waited)")
        // While that fetch is still hanging, the next TAB waits no longer.
        let again = ContinuousClock.now
        _ = cache.get()
        #expect(ContinuousClock.now - again < .milliseconds(700))
    }
}
