import Testing
import TapperCore

@Suite struct RouteTemplateTests {
    @Test(arguments: [
        ("/users/{user_id}", "/users/{:str}"),
        ("/items/{id:int}", "/items/{:int}"),
        ("/files/{rest:path}", "/files/{:path}"),
        ("/p/{x:float}/{u:uuid}", "/p/{:float}/{:uuid}"),
        ("/", "/"),
        ("/users/", "/users/"),
        ("/a%20b", "/a b"),
    ])
    func parsesValidTemplates(raw: String, shape: String) throws {
        let t = try RouteTemplate(parsing: raw)
        #expect(t.shape == shape)
        #expect(t.raw == raw)
    }

    @Test(arguments: [
        ("users/{id}", "must start with '/'"),
        ("/users/{id", "unbalanced braces"),
        ("/users/id}", "unbalanced braces"),
        ("/a/{x}/b/{x}", "duplicate parameter name 'x'"),
        ("/a//b", "empty path segment"),
        ("/a/../b", "dot segments"),
        ("/a/./b", "dot segments"),
        ("/a/{x:bogus}", "unknown convertor 'bogus'"),
        ("/a/{rest:path}/b", "must be the last segment"),
        ("/a/pre{x}", "whole path segment"),
        ("/a/{}", "must be an identifier"),
        ("/a/{1x}", "must be an identifier"),
        ("/a\r\nX: y", "control characters"),
        ("/a b", "must not contain ' '"),
        ("/a?b", "must not contain '?'"),
    ])
    func rejectsMalformedTemplates(raw: String, expected: String) {
        #expect {
            try RouteTemplate(parsing: raw)
        } throws: { error in
            guard let e = error as? FieldError else { return false }
            return e.message.contains(expected)
        }
    }

    @Test func parameterNamesInOrder() throws {
        let t = try RouteTemplate(parsing: "/orgs/{org}/repos/{repo:int}/{rest:path}")
        #expect(t.parameterNames == ["org", "repo", "rest"])
    }

    @Test func convertors() {
        #expect(RouteTemplate.Convertor.int.accepts("42"))
        #expect(!RouteTemplate.Convertor.int.accepts("4.2"))
        #expect(!RouteTemplate.Convertor.int.accepts("-1"))
        #expect(RouteTemplate.Convertor.float.accepts("4.2"))
        #expect(RouteTemplate.Convertor.float.accepts("4"))
        #expect(!RouteTemplate.Convertor.float.accepts("4."))
        #expect(!RouteTemplate.Convertor.float.accepts(".5"))
        #expect(RouteTemplate.Convertor.uuid.accepts("123e4567-e89b-12d3-a456-426614174000"))
        #expect(!RouteTemplate.Convertor.uuid.accepts("123E4567-e89b-12d3-a456-426614174000"))
        #expect(!RouteTemplate.Convertor.uuid.accepts("123e4567e89b12d3a456426614174000"))
        #expect(!RouteTemplate.Convertor.str.accepts(""))
    }

    @Test func percentDecoding() {
        #expect(PercentDecoding.decode("a%20b") == "a b")
        #expect(PercentDecoding.decode("a%2Fb") == "a/b")
        #expect(PercentDecoding.decode("%zz") == nil)
        #expect(PercentDecoding.decode("%4") == nil)
        #expect(PercentDecoding.decode("%C3%A9") == "é")
        #expect(PercentDecoding.decode("%FF") == nil)
    }
}

@Suite struct PathSafetyTests {
    @Test(arguments: [
        ("/a/../b", PathSafety.Violation.dotSegment),
        ("/a/./b", .dotSegment),
        ("/a/..", .dotSegment),
        ("/a/%2e%2e/b", .dotSegment),
        ("/a/%2E./b", .dotSegment),
        ("/a%2Fb", .encodedSeparator),
        ("/a%5cb", .encodedSeparator),
        ("/a\\b", .backslash),
        ("/a%00", .controlCharacter),
        ("/a%zz", .badEscape),
    ])
    func rejects(path: String, violation: PathSafety.Violation) {
        #expect(PathSafety.check(path) == violation)
    }

    @Test(arguments: ["/", "/a/b", "/a/...", "/a/.b", "/a/b.", "/files/v1.2/x", "//a", "/a%20b", "/caf%C3%A9"])
    func accepts(path: String) {
        #expect(PathSafety.check(path) == nil)
    }
}
