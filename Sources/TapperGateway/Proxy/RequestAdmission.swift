import NIOCore
import TapperCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a parsed request head gets: a gateway error, an admin endpoint's answer, or a route
/// to proxy along (service, candidate instances, the upstream target, the auth decision).
/// Reads the configuration, the loop's routing snapshot and the health view; changes nothing.
struct RequestAdmission {
    let gateway: Gateway
    let admin: AdminDispatch
    /// This listener proxies (the admin listener does not).
    let servesProxy: Bool
    let peerIP: String

    /// The strings of a head that routing and logging need; the rest stays as offsets.
    struct Request {
        var method = ""
        var uri = ""
        /// Where the query starts in ``uri``, in bytes (-1: none).
        var queryOffset = -1
        /// The client's `X-Request-ID`, empty when absent.
        var clientRequestID = ""
        /// `Authorization`, read only for the gateway's own paths (proxied requests pass it on).
        var authorization: String?

        /// The version the request pins with the version header (`X-Tapper-Version`), if any.
        var versionPin: String?

        /// With tracing on: the caller's valid `traceparent` (nil when absent, invalid or
        /// repeated, as W3C Trace Context asks), and where `Host`'s value is in the head's bytes
        /// (nil: absent; the span reuses the loop's ``SpanHost`` while hosts repeat).
        var traceParent: TraceParent?
        var host: Range<Int>?

        /// - Parameter versionHeader: the lower-cased name of the header that pins a version
        ///   (empty: none).
        /// - Parameter tracing: read `traceparent` and `Host` too (tested only when on, so
        ///   that with tracing off the scan is what it was).
        init(_ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, versionHeader: [UInt8], tracing: Bool = false) {
            headBytes.withUnsafeReadableBytes { raw in
                method = String(decoding: UnsafeRawBufferPointer(rebasing: raw[head.method]), as: UTF8.self)
                let target = UnsafeRawBufferPointer(rebasing: raw[head.target])
                uri = String(decoding: target, as: UTF8.self)
                // memchr: the generic search over `String.UTF8View` cost more per request.
                if let base = target.baseAddress, let q = memchr(base, Int32(UInt8(ascii: "?")), target.count) {
                    queryOffset = base.distance(to: UnsafeRawPointer(q))
                }
                var requestIDSeen = false
                var traceParents = 0
                for h in head.headers {
                    // One pass for all of them; a length test rules out nearly every other one.
                    let n = h.name.count
                    if n == 12, !requestIDSeen, raw.equalsIgnoringCase(h.name, "x-request-id") {
                        clientRequestID = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                        requestIDSeen = true
                    } else if n == versionHeader.count, versionPin == nil, !h.value.isEmpty, raw.equalsLowercased(h.name, versionHeader) {
                        versionPin = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                    } else if tracing {
                        if n == 11, raw.equalsIgnoringCase(h.name, "traceparent") {
                            traceParents += 1
                            traceParent = TraceParent(parsing: UnsafeRawBufferPointer(rebasing: raw[h.value]))
                        } else if n == 4, host == nil, !h.value.isEmpty, Self.isHost(raw, h.name) {
                            host = h.value
                        }
                    }
                }
                if traceParents > 1 { traceParent = nil }
                if raw.count > head.target.lowerBound + 8, raw[head.target.lowerBound + 1] == UInt8(ascii: "_") {
                    for h in head.headers where raw.equalsIgnoringCase(h.name, "authorization") {
                        authorization = String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                        break
                    }
                }
            }
        }

        /// Whether the 4-byte header name at `name` is `Host`, in any case: one word compared
        /// (setting bit 0x20 of a byte gives `h` only for `H` and `h`, and so on for `o`, `s`, `t`).
        @inline(__always)
        static func isHost(_ raw: UnsafeRawBufferPointer, _ name: Range<Int>) -> Bool {
            raw.loadUnaligned(fromByteOffset: name.lowerBound, as: UInt32.self) | 0x2020_2020 == UInt32(littleEndian: 0x7473_6F68)
        }

        /// The path: the target up to its query.
        var path: Substring {
            queryOffset >= 0 ? uri[..<uri.utf8.index(uri.utf8.startIndex, offsetBy: queryOffset)] : Substring(uri)
        }
    }

    /// A route the request is proxied along.
    struct Route {
        var service: String
        var routeTemplate: String
        /// The route's index in the routing snapshot (where the loop caches its metric handles).
        var entryIndex: Int
        var candidates: [UpstreamTarget]
        var balancerCandidates: [BalancerCandidate]
        /// The target to send upstream when the service prefix is stripped.
        var upstreamTarget: String?
        /// The subject an immediate auth decision allowed.
        var subject: String?
        /// The auth request to decide asynchronously before connecting.
        var deferredAuth: AuthRequest?
    }

    enum Decision {
        case answer(GatewayError, close: Bool)
        case admin(AdminResponder.Reply)
        case proxy(Route)
    }

    @inline(__always)
    func decide(
        _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, _ request: Request, bodyFollows: Bool, snapshot: SnapshotRef, now: NIODeadline,
        loop: LoopContext
    ) -> Decision {
        // The configuration is read in place: a copy of it would retain each of its fields.
        // Size checks (the target's own limit is the parser's: 414).
        if head.length - head.target.count > gateway.configuration.maxHeaderBytes {
            return .answer(.headersTooLarge(limit: gateway.configuration.maxHeaderBytes), close: true)
        }
        if case .contentLength(let n) = head.framing, n > gateway.configuration.maxBodyBytes {
            return .answer(.bodyTooLarge(limit: gateway.configuration.maxBodyBytes), close: true)
        }
        let uri = request.uri
        guard uri.utf8.first == UInt8(ascii: "/") else { return .answer(.badTarget, close: true) }
        let path = request.path
        if let violation = PathSafety.check(path) { return .answer(.badPath(violation.rawValue), close: false) }

        if admin.claims(path) {
            switch admin.respond(method: request.method, path: path, query: uri[path.endIndex...], authorization: request.authorization) {
            case .success(let reply): return .admin(reply)
            case .failure(let error): return .answer(error, close: false)
            }
        }
        guard servesProxy else { return .answer(.adminListenerOnly, close: false) }

        let method = request.method
        switch snapshot.table.resolveEntry(method: method, path: path) {
        case .notFound:
            return .answer(.noRoute(method: method, path: path), close: false)
        case .methodNotAllowed(let allowed):
            return .answer(.methodNotAllowed(method, allowed: allowed), close: false)
        case .matched(let entryIndex):
            // The entry's fields are read in place: copying the entry retained its arrays.
            let service = snapshot.table.entries[entryIndex].service
            let routeTemplate = snapshot.table.entries[entryIndex].template.raw
            let prefixSegments = snapshot.table.entries[entryIndex].prefixSegments
            // Authentication (routes registered as public, and /health above, skip it).
            var subject: String? = nil
            var deferredAuth: AuthRequest? = nil
            if let auth = gateway.configuration.auth, !snapshot.table.entries[entryIndex].isPublic {
                let authRequest = AuthRequest(
                    method: method, target: uri, path: String(path), peerAddress: peerIP, service: service, routeTemplate: routeTemplate,
                    headBytes: headBytes, headerRanges: head.headers
                )
                switch auth.decideImmediately(authRequest) {
                case .allow(let who)?:
                    subject = who
                case .deny(let failure)?:
                    // An unauthenticated client does not get to stream a body: close after the answer.
                    return .answer(.refused(failure), close: bodyFollows)
                case nil:
                    deferredAuth = authRequest
                }
            }
            if let limiter = snapshot.gatewayLimiter {
                let key = rateLimitKey(limiter.key, head, headBytes, subject: subject)
                let decision = limiter.take(key, now: now.uptimeNanoseconds)
                if !decision.allowed {
                    return .answer(.rateLimited(limiter.limit, key: limiter.key == .clientIP ? "client" : limiter.key.description, decision), close: bodyFollows)
                }
            }
            if let limits = snapshot.entryLimiters[entryIndex],
                let refused = takeEntryLimits(limits, service: service, entryIndex: entryIndex, head, headBytes, subject: subject, snapshot: snapshot, now: now)
            {
                return .answer(refused, close: bodyFollows)
            }
            let all = snapshot.targets[entryIndex]
            var candidates = gateway.health.routable(all)
            if candidates.isEmpty { return .answer(.noHealthyInstance(service: service), close: false) }
            var balancerCandidates =
                candidates.count == all.count
                ? snapshot.balancerCandidates[entryIndex]
                : candidates.map { BalancerCandidate(instanceID: $0.instanceID, weight: $0.weight) }
            if request.versionPin != nil || snapshot.versionSplits[entryIndex] != nil {
                if let refused = narrowToVersion(
                    service: service, entryIndex: entryIndex, allRoutable: candidates.count == all.count, &candidates, &balancerCandidates,
                    pin: request.versionPin, head, headBytes, snapshot: snapshot, loop: loop
                ) {
                    return .answer(refused, close: false)
                }
            }
            return .proxy(
                Route(
                    service: service, routeTemplate: routeTemplate, entryIndex: entryIndex, candidates: candidates, balancerCandidates: balancerCandidates,
                    upstreamTarget: prefixSegments > 0 ? RequestHeadRewriter.strip(segments: prefixSegments, from: uri) : nil, subject: subject,
                    deferredAuth: deferredAuth
                )
            )
        }
    }

    /// Takes a token from the service's and the route's own limiters (both when both are set).
    /// - Returns: the 429 to answer when one of them refuses.
    private func takeEntryLimits(
        _ limits: EntryLimiters, service: String, entryIndex: Int, _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, subject: String?, snapshot: SnapshotRef,
        now: NIODeadline
    ) -> GatewayError? {
        let keyKind = snapshot.rateLimitKey
        let key = rateLimitKey(keyKind, head, headBytes, subject: subject)
        let keyName = keyKind == .clientIP ? "client" : keyKind.description
        if let limiter = limits.service {
            let decision = limiter.take(key, now: now.uptimeNanoseconds)
            if !decision.allowed { return .rateLimited(limiter.limit, key: keyName, decision, policy: "service", scope: " on service '\(service)'") }
        }
        if let limiter = limits.route {
            let decision = limiter.take(key, now: now.uptimeNanoseconds)
            if !decision.allowed {
                let entry = snapshot.table.entries[entryIndex]
                return .rateLimited(limiter.limit, key: keyName, decision, policy: "route", scope: " on \(entry.methods.first ?? "*") \(entry.template.raw)")
            }
        }
        return nil
    }

    /// The rate-limit key of a request: its client IP, subject or header value (the IP when
    /// the subject or header is missing, so nobody escapes the limit by leaving it out).
    private func rateLimitKey(_ key: RateLimiter.Key, _ head: HTTPHeadParser.Head, _ headBytes: ByteBuffer, subject: String?) -> String {
        switch key {
        case .clientIP:
            return peerIP
        case .subject:
            return subject.map { "subject:" + $0 } ?? peerIP
        case .header(let name):
            let value: String? = headBytes.withUnsafeReadableBytes { raw in
                for h in head.headers where h.name.count == name.utf8.count && !h.value.isEmpty {
                    let bytes = UnsafeRawBufferPointer(rebasing: raw[h.name])
                    if zip(bytes, name.utf8).allSatisfy({ HeaderRules.fold($0) == $1 }) {
                        return String(decoding: UnsafeRawBufferPointer(rebasing: raw[h.value]), as: UTF8.self)
                    }
                }
                return nil
            }
            return value.map { "header:" + $0 } ?? peerIP
        }
    }
}
