import Testing
import TapperCore

@Suite struct HTTPHeadParserTests {
    func parse(_ text: String, kind: HTTPHeadParser.Kind = .request, limits: HTTPHeadParser.Limits = .init(), head: Bool = false) -> Result<HTTPHeadParser.Head, HTTPHeadParser.Failure> {
        Array(text.utf8).withUnsafeBytes { HTTPHeadParser.parse($0, kind: kind, limits: limits, requestMethodWasHEAD: head) }
    }

    func string(_ text: String, _ range: Range<Int>) -> String {
        let bytes = Array(text.utf8)
        return String(decoding: bytes[range], as: UTF8.self)
    }

    @Test func parsesARequestHeadWithOffsets() throws {
        let text = "POST /users/?a=1&a=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Multi:  a, b  \r\nExpect: 100-continue\r\n\r\nhello"
        let head = try parse(text).get()
        #expect(string(text, head.method) == "POST")
        #expect(string(text, head.target) == "/users/?a=1&a=2")
        #expect(head.versionMinor == 1)
        #expect(head.headers.count == 4)
        #expect(string(text, head.headers[2].value) == "a, b")
        #expect(head.framing == .contentLength(5))
        #expect(head.expectContinue)
        #expect(head.keepAlive)
        #expect(head.length == text.utf8.count - 5)
    }

    @Test func reusesAHandedBackHeaderArrayAndLeavesASharedOneAlone() throws {
        // Handed back alone (the head it came from is gone): the same buffer, refilled.
        var storage = try parse("GET /a HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n").get().headers
        let buffer = storage.withUnsafeBufferPointer { $0.baseAddress }
        let text = "GET /b HTTP/1.1\r\nHost: y\r\n\r\n"
        let second = try Array(text.utf8).withUnsafeBytes { HTTPHeadParser.parse($0, kind: .request, reusing: HTTPHeadParser.take(&storage)) }.get()
        #expect(second.headers.count == 1)
        #expect(string(text, second.headers[0].value) == "y")
        #expect(second.headers.withUnsafeBufferPointer { $0.baseAddress } == buffer)
        // Still held elsewhere: a new array, and the other holder keeps its headers.
        let keep = second.headers
        let third = try Array("GET /c HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n".utf8).withUnsafeBytes {
            HTTPHeadParser.parse($0, kind: .request, reusing: second.headers)
        }.get()
        #expect(third.headers.count == 3)
        #expect(keep.count == 1)
        #expect(string(text, keep[0].value) == "y")
    }

    @Test func longValuesKeepTabsAndObsTextAndLoseTrailingBlanks() throws {
        let text = "GET / HTTP/1.1\r\nX-Long: a\tb c d e f g h i j k l m n o p caf\u{E9} \t \r\nY: \t \r\n\r\n"
        let head = try parse(text).get()
        #expect(string(text, head.headers[0].value) == "a\tb c d e f g h i j k l m n o p caf\u{E9}")
        #expect(head.headers[1].value.isEmpty)
    }

    @Test func keepAliveRules() throws {
        #expect(try parse("GET / HTTP/1.0\r\n\r\n").get().keepAlive == false)
        #expect(try parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").get().keepAlive)
        #expect(try parse("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").get().keepAlive == false)
    }

    @Test func upgradeRequestsAreRecognisedInAnyTokenOrderAndCase() throws {
        for connection in ["Upgrade", "keep-alive, Upgrade", "UPGRADE,keep-alive", " foo , upgrade "] {
            let text = "GET /ws HTTP/1.1\r\nConnection: \(connection)\r\nUpgrade: websocket\r\n\r\n"
            let head = try parse(text).get()
            #expect(head.connectionUpgrade, "Connection: \(connection)")
            #expect(head.upgrade.map { string(text, $0) } == "websocket")
            #expect(head.keepAlive)
        }
        let plain = try parse("GET / HTTP/1.1\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n\r\n").get()
        #expect(!plain.connectionUpgrade, "Upgrade without Connection: upgrade asks for nothing")
        #expect(try parse("GET / HTTP/1.1\r\nConnection: upgraded\r\n\r\n").get().connectionUpgrade == false)
        let switching = try parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", kind: .response).get()
        #expect(switching.status == 101 && switching.framing == .none && switching.connectionUpgrade)
    }

    @Test func incompleteHeadsAskForMore() {
        for partial in ["", "GET", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r"] {
            #expect(parse(partial) == .failure(.incomplete), "\(partial.debugDescription)")
        }
    }

    @Test(arguments: [
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET / HTTP/1.1\r\nHost: x\n\r\n",
        "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ": x\r\n\r\n",
        // Long values (checked 8 bytes at a time): a control byte or DEL anywhere, a bare CR.
        "GET / HTTP/1.1\r\nX: abcdefghijklmnop\u{1}qrstuvwxyz\r\n\r\n",
        "GET / HTTP/1.1\r\nX: abcdefg\u{0}hijklmnopqrstuvwxyz\r\n\r\n",
        "GET / HTTP/1.1\r\nX: abcdefghijklmnopqrstuvw\u{7F}\r\n\r\n",
        "GET / HTTP/1.1\r\nX: abcdefghijklmnop\rqrstuvwxyz\r\n\r\n",
        "GET / HTTP/1.1\r\nX: abcdefghijklmnopqrstuvwxyz\u{1F}\r\n\r\n",
    ])
    func refusesWhatAnUpstreamCouldReadDifferently(text: String) {
        guard case .failure(let f) = parse(text) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
        if case .malformed = f {} else { Issue.record("\(text.debugDescription) gave \(f)") }
    }

    @Test func sameContentLengthTwiceIsFineAndOtherCodingsAre501() throws {
        #expect(try parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").get().framing == .contentLength(5))
        #expect(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == .failure(.unsupportedTransferEncoding))
        #expect(try parse("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").get().framing == .chunked)
    }

    @Test func limits() {
        let limits = HTTPHeadParser.Limits(maxHeadBytes: 1024, maxTargetBytes: 100, maxHeaderCount: 3)
        #expect(parse("GET /\(String(repeating: "a", count: 200)) HTTP/1.1\r\n\r\n", limits: limits) == .failure(.targetTooLong))
        #expect(parse("GET /\(String(repeating: "a", count: 2000))", limits: limits) == .failure(.targetTooLong))
        #expect(parse("GET / HTTP/1.1\r\nX: \(String(repeating: "a", count: 2000))\r\n\r\n", limits: limits) == .failure(.headTooLarge))
        #expect(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", limits: limits) == .failure(.headTooLarge))
    }

    @Test func responseFraming() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 34\r\n\r\n", kind: .response).get().framing == .contentLength(34))
        #expect(try parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", kind: .response).get().framing == .chunked)
        let close = try parse("HTTP/1.1 200 OK\r\n\r\n", kind: .response).get()
        #expect(close.framing == .untilClose && !close.keepAlive)
        #expect(try parse("HTTP/1.1 204 No Content\r\n\r\n", kind: .response).get().framing == .none)
        #expect(try parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", kind: .response).get().framing == .none)
        #expect(try parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", kind: .response, head: true).get().framing == .none)
        #expect(try parse("HTTP/1.1 100 Continue\r\n\r\n", kind: .response).get().status == 100)
        #expect(try parse("HTTP/1.0 200\r\nContent-Length: 1\r\n\r\n", kind: .response).get().keepAlive == false)
    }
}

@Suite struct ChunkedBodyTrackerTests {
    func run(_ text: String, in pieces: Int = 1) throws -> (consumed: Int, tracker: ChunkedBodyTracker) {
        let bytes = Array(text.utf8)
        var tracker = ChunkedBodyTracker()
        var consumed = 0
        let size = max(1, bytes.count / pieces)
        var offset = 0
        while offset < bytes.count && !tracker.isComplete {
            let end = min(bytes.count, offset + size)
            let n = try Array(bytes[offset..<end]).withUnsafeBytes { try tracker.consume($0) }
            consumed += n
            offset = end
        }
        return (consumed, tracker)
    }

    @Test func findsTheEndOfABodyInAnySlicing() throws {
        let body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        for pieces in [1, 2, 3, 7, body.utf8.count] {
            let (consumed, tracker) = try run(body + "GET /next HTTP/1.1\r\n", in: pieces)
            #expect(tracker.isComplete)
            #expect(tracker.payloadBytes == 11)
            if pieces == 1 { #expect(consumed == body.utf8.count) }
        }
    }

    @Test(arguments: ["x\r\n", "5\r\nhelloXX", "5\nhello\r\n", "-1\r\n", "0\r\n\n", "ffffffffffffffffff\r\n", "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"])
    func refusesMalformedFraming(text: String) {
        #expect(throws: ChunkedBodyTracker.Failure.self) { _ = try run(text) }
    }
}
