import Testing
import TapperCore

@Suite struct RouteTableTests {
    func table(_ routes: [(String, String, [String])]) throws -> RouteTable {
        var b = RouteTable.Builder()
        for (service, path, methods) in routes {
            do { let ok = b.add(service: service, instanceID: "\(service)-1", template: try RouteTemplate(parsing: path), methods: methods); #expect(ok) }
        }
        return b.build()
    }

    func matched(_ r: RouteTable.Resolution) -> (String, String, [String: String])? {
        guard case .matched(let m) = r else { return nil }
        return (m.entry.service, m.entry.template.raw, Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.value) }))
    }

    @Test func aRouteIsPublicOnlyWhileEveryInstanceSaysSo() throws {
        let template = try RouteTemplate(parsing: "/catalog/{id}")
        func isPublic(_ flags: [Bool]) -> Bool? {
            var b = RouteTable.Builder()
            for (i, flag) in flags.enumerated() { b.add(service: "shop", instanceID: "i\(i)", template: template, methods: ["GET"], isPublic: flag) }
            guard case .matched(let m) = b.build().resolve(method: "GET", path: "/catalog/1") else { return nil }
            return m.entry.isPublic
        }
        #expect(isPublic([true]) == true)
        #expect(isPublic([true, true]) == true)
        #expect(isPublic([true, false]) == false)
        #expect(isPublic([false, true]) == false)
    }

    @Test func literalBeatsParameter() throws {
        let t = try table([("users", "/users/{user_id}", ["GET"]), ("me", "/users/me", ["GET"])])
        #expect(matched(t.resolve(method: "GET", path: "/users/me"))?.0 == "me")
        let other = matched(t.resolve(method: "GET", path: "/users/42"))
        #expect(other?.0 == "users")
        #expect(other?.2 == ["user_id": "42"])
    }

    @Test func typedParameterBeatsPlainParameter() throws {
        let t = try table([("names", "/x/{name}", ["GET"]), ("ids", "/x/{id:int}", ["GET"])])
        #expect(matched(t.resolve(method: "GET", path: "/x/42"))?.0 == "ids")
        #expect(matched(t.resolve(method: "GET", path: "/x/bob"))?.0 == "names")
        #expect(matched(t.resolve(method: "GET", path: "/x/4.5"))?.0 == "names")
    }

    @Test func catchAllComesLast() throws {
        let t = try table([
            ("files", "/files/{rest:path}", ["GET"]),
            ("meta", "/files/{name}/meta", ["GET"]),
            ("root", "/files/readme", ["GET"]),
        ])
        #expect(matched(t.resolve(method: "GET", path: "/files/readme"))?.0 == "root")
        #expect(matched(t.resolve(method: "GET", path: "/files/a/meta"))?.0 == "meta")
        let deep = matched(t.resolve(method: "GET", path: "/files/a/b/c.txt"))
        #expect(deep?.0 == "files")
        #expect(deep?.2 == ["rest": "a/b/c.txt"])
        // Starlette: {rest:path} needs the slash before it; it may match an empty remainder.
        #expect(matched(t.resolve(method: "GET", path: "/files/"))?.2 == ["rest": ""])
        if case .notFound = t.resolve(method: "GET", path: "/files") {} else { Issue.record("/files should not match") }
    }

    @Test func backtracksWhenSpecificBranchDeadEnds() throws {
        let t = try table([("a", "/a/b/c", ["GET"]), ("b", "/a/{x}/d", ["GET"])])
        #expect(matched(t.resolve(method: "GET", path: "/a/b/d"))?.0 == "b")
    }

    @Test func methodNotAllowedListsTheUnionOfAllowedMethods() throws {
        let t = try table([("a", "/items/{id}", ["GET"]), ("b", "/items/{id:int}", ["DELETE"])])
        guard case .methodNotAllowed(let allowed) = t.resolve(method: "POST", path: "/items/5") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["DELETE", "GET", "HEAD"])
    }

    @Test func methodFallsThroughToALessSpecificRoute() throws {
        let t = try table([("me", "/users/me", ["GET"]), ("users", "/users/{id}", ["POST"])])
        #expect(matched(t.resolve(method: "POST", path: "/users/me"))?.0 == "users")
    }

    @Test func headAnswersFromGetAndAnyMethodRoutesMatchEverything() throws {
        let t = try table([("a", "/a", ["GET"]), ("b", "/b", [])])
        #expect(matched(t.resolve(method: "HEAD", path: "/a"))?.0 == "a")
        #expect(matched(t.resolve(method: "PATCH", path: "/b"))?.0 == "b")
    }

    @Test func notFound() throws {
        let t = try table([("a", "/a", ["GET"])])
        if case .notFound = t.resolve(method: "GET", path: "/b") {} else { Issue.record("expected 404") }
        if case .notFound = t.resolve(method: "GET", path: "/a/") {} else { Issue.record("trailing slash is a different route") }
        if case .notFound = t.resolve(method: "GET", path: "/a%zz") {} else { Issue.record("bad escape must not match") }
    }

    @Test func percentEncodedSegmentsMatchDecoded() throws {
        let t = try table([("a", "/users/{name}", ["GET"]), ("s", "/caf%C3%A9", ["GET"])])
        #expect(matched(t.resolve(method: "GET", path: "/users/a%20b"))?.2 == ["name": "a b"])
        #expect(matched(t.resolve(method: "GET", path: "/café"))?.0 == "s")
        // An encoded slash stays inside its segment: it never creates a new one.
        #expect(matched(t.resolve(method: "GET", path: "/users/a%2Fb"))?.2 == ["name": "a/b"])
    }

    @Test func conflictsBetweenServicesAreRefused() throws {
        var b = RouteTable.Builder()
        do { let ok = b.add(service: "a", instanceID: "1", template: try RouteTemplate(parsing: "/users/{id}"), methods: ["GET"]); #expect(ok) }
        do { let ok = b.add(service: "b", instanceID: "2", template: try RouteTemplate(parsing: "/users/{user_id}"), methods: ["GET"]); #expect(!ok) }
        do { let ok = b.add(service: "b", instanceID: "2", template: try RouteTemplate(parsing: "/users/{user_id}"), methods: []); #expect(!ok) }
        do { let ok = b.add(service: "b", instanceID: "2", template: try RouteTemplate(parsing: "/users/{user_id}"), methods: ["POST"]); #expect(ok) }
        do { let ok = b.add(service: "b", instanceID: "2", template: try RouteTemplate(parsing: "/users/{user_id:int}"), methods: ["GET"]); #expect(ok) }
        let t = b.build()
        #expect(t.conflicts.count == 2)
        #expect(t.conflicts.first?.owner == "a")
        #expect(t.conflicts.first?.refused == "b")
    }

    @Test func instancesOfOneServiceMerge() throws {
        var b = RouteTable.Builder()
        let tpl = try RouteTemplate(parsing: "/x")
        do { let ok = b.add(service: "a", instanceID: "2", template: tpl, methods: ["GET", "POST"]); #expect(ok) }
        do { let ok = b.add(service: "a", instanceID: "1", template: tpl, methods: ["GET"]); #expect(ok) }
        let t = b.build()
        guard case .matched(let get) = t.resolve(method: "GET", path: "/x"), case .matched(let post) = t.resolve(method: "POST", path: "/x") else {
            Issue.record("expected matches")
            return
        }
        #expect(get.entry.instanceIDs == ["1", "2"])
        #expect(post.entry.instanceIDs == ["2"])
    }

    @Test func buildsFromASnapshotWithPrefixes() throws {
        let reg = ServiceRegistration(url: "http://127.0.0.1:9000", prefix: "/api", routes: [RouteSpec(methods: ["GET"], path: "/users/{id:int}")])
        let snap = CatalogSnapshot(index: 7, instances: [InstanceRecord(service: "users", instanceID: "i1", registration: reg, createIndex: 1, modifyIndex: 1)])
        let t = RouteTable(snapshot: snap)
        #expect(t.index == 7)
        #expect(matched(t.resolve(method: "GET", path: "/api/users/3"))?.2 == ["id": "3"])
    }

    @Test func costStaysFlatWithManyRoutes() throws {
        // Correctness at scale; speed is measured by the microbenchmark, not here.
        var b = RouteTable.Builder()
        for i in 0..<10_000 {
            b.add(service: "s\(i % 50)", instanceID: "i", template: try RouteTemplate(parsing: "/svc\(i)/items/{id:int}"), methods: ["GET"])
        }
        let t = b.build()
        #expect(matched(t.resolve(method: "GET", path: "/svc9999/items/5"))?.0 == "s49")
    }

    @Test func resolveEntryAgreesWithResolve() throws {
        let t = try table([
            ("users", "/users/{user_id}", ["GET"]), ("me", "/users/me", ["GET"]), ("ids", "/x/{id:int}", ["DELETE"]),
            ("files", "/files/{rest:path}", ["GET"]), ("meta", "/files/{name}/meta", ["GET"]), ("any", "/any", []), ("root", "/", ["GET"]),
        ])
        let paths = ["/", "/users/me", "/users/42", "/users/", "/users", "/x/1", "/x/y", "/files/a/b/c", "/files/a/meta", "/any", "/nope", "/users/%ZZ", "/users/caf%C3%A9", ""]
        for method in ["GET", "HEAD", "POST", "DELETE"] {
            for path in paths {
                let full = t.resolve(method: method, path: path)
                let entry = t.resolveEntry(method: method, path: path)
                switch (full, entry) {
                case (.matched(let m), .matched(let i)): #expect(m.entryIndex == i, "\(method) \(path)")
                case (.methodNotAllowed(let a), .methodNotAllowed(let b)): #expect(a == b, "\(method) \(path)")
                case (.notFound, .notFound): break
                default: Issue.record("\(method) \(path): \(full) vs \(entry)")
                }
                // The gateway's Substring overload (bytes, not generic) must agree too, also on a
                // slice of a longer string (a path cut from its query).
                for sub in [Substring(path), (path + "?q=1").split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]] {
                    let bytes = t.resolveEntry(method: method, path: sub)
                    switch (entry, bytes) {
                    case (.matched(let a), .matched(let b)): #expect(a == b, "\(method) \(path)")
                    case (.methodNotAllowed(let a), .methodNotAllowed(let b)): #expect(a == b, "\(method) \(path)")
                    case (.notFound, .notFound): break
                    default: Issue.record("Substring \(method) \(path): \(entry) vs \(bytes)")
                    }
                }
            }
        }
    }
}

@Suite struct RequestTargetTests {
    @Test func thePathIsEverythingBeforeTheFirstQuestionMark() {
        #expect(RequestTarget.path(of: "/users/7?full=1&x=?") == "/users/7")
        #expect(RequestTarget.path(of: "/users/7") == "/users/7")
        #expect(RequestTarget.path(of: "/?") == "/")
    }
}
