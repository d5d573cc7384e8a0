import ByteSource
import Foundation
import Logging
import Synchronization

public struct S3Options: Sendable {
    /// A custom endpoint (MinIO, Ceph, moto): path-style addressing. `nil`: AWS.
    public var endpoint: String?
    public var region: String
    /// Send no signature (public buckets).
    public var anonymous = false
    public var requesterPays = false

    public init(endpoint: String? = nil, region: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.endpoint = endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.region = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
    }
}

/// Lists, sizes and reads objects on S3 and HTTP servers (and local files), with retries,
/// identity checks (`If-Match`) and errors that say what to do.
public final class RemoteStore: Sendable {
    public let transport: any HTTPTransport
    public let s3: S3Options
    public let retry: RetryPolicy
    private let credentials: Credentials?
    private let logger: Logger
    private let jitter = Mutex(JitterSource(seed: 0x5EED))
    private let counters = Mutex<(requests: Int, retries: Int, bytes: UInt64)>((0, 0, 0))
    /// Ranges per multi-range request, learned per origin (`MultiRangeLimit`).
    private let rangeLimits = Mutex<[String: MultiRangeLimit]>([:])

    public init(transport: any HTTPTransport, s3: S3Options, retry: RetryPolicy = RetryPolicy(), credentials: Credentials?, logger: Logger) {
        self.transport = transport
        self.s3 = s3
        self.retry = retry
        self.credentials = s3.anonymous ? nil : credentials
        self.logger = logger
    }

    public var statistics: (requests: Int, retries: Int, bytes: UInt64) { counters.withLock { $0 } }

    // MARK: Requests with retries

    /// Performs `request` (re-signed on every attempt) until it succeeds or the policy gives up.
    /// Redirects are followed within the request's origin only (at most `maxRedirects`): one
    /// to another host would let a server send zarrmount's requests, and their credentials,
    /// anywhere, so it is an error naming both.
    func send(_ build: () -> HTTPRequest, url: String, expectedLength: Int? = nil) async throws -> HTTPResponse {
        var attempt = 0
        var redirects: [String] = []
        while true {
            attempt += 1
            var request = build()
            if let redirected = redirects.last { request.url = redirected }
            counters.withLock { $0.requests += 1 }
            let outcome: RetryPolicy.Outcome
            var failure: ObjectStoreError
            do {
                let response = try await transport.perform(request)
                counters.withLock { $0.bytes += UInt64(response.body.count) }
                if (200..<300).contains(response.status) {
                    let promised = response.contentRange.map { Int($0.last - $0.first + 1) } ?? response.contentLength
                    if request.method == .get, let promised, response.body.count < promised {
                        outcome = .shortBody
                        failure = ObjectStoreError(.truncated, url: url, status: response.status, attempts: attempt)
                    } else if request.method == .get, let expectedLength, response.status == 206, response.body.count != expectedLength {
                        outcome = .shortBody
                        failure = ObjectStoreError(.truncated, url: url, status: response.status, attempts: attempt)
                    } else {
                        return response
                    }
                } else if [301, 302, 303, 307, 308].contains(response.status), let target = response.header("location") {
                    let from = redirects.last ?? request.url
                    let resolved = Self.resolve(target, against: from)
                    guard Self.origin(of: resolved).lowercased() == Self.origin(of: from).lowercased() else {
                        throw ObjectStoreError(.redirected(to: resolved), url: url, status: response.status, attempts: attempt)
                    }
                    guard redirects.count < Self.maxRedirects else {
                        throw ObjectStoreError(
                            .invalidResponse("more than \(Self.maxRedirects) redirects"), url: url, status: response.status, attempts: attempt)
                    }
                    redirects.append(resolved)
                    attempt -= 1
                    continue
                } else {
                    let code = s3ErrorCode(response.body)
                    let retryAfter = response.header("retry-after").flatMap { Int($0) }.map { Duration.seconds($0) }
                    outcome = .status(response.status, retryAfter: retryAfter, s3Code: code)
                    let kind: ObjectStoreError.Kind
                    switch response.status {
                    case 404: kind = .notFound
                    case 403, 401: kind = .forbidden
                    case 412: kind = .changed
                    default: kind = .http(response.status)
                    }
                    failure = ObjectStoreError(kind, url: url, status: response.status, s3Code: code, attempts: attempt)
                }
            } catch let error as TransportError where error.exceededBodyLimit {
                // A server that ignored the Range of a single-range GET once (a proxy or a load
                // balancer in front of servers that differ) may honour it on the next attempt.
                // A multi-range GET answered with the whole object is the caller's to handle: it
                // asks for fewer ranges (`getGroup`), and a retry would only repeat the refusal.
                guard expectedLength != nil else { throw ObjectStoreError(.tooLarge, url: url, attempts: attempt) }
                outcome = .shortBody
                failure = ObjectStoreError(.tooLarge, url: url, attempts: attempt)
            } catch let error as TransportError {
                outcome = .transport(retryable: error.isRetryable)
                // Name the server: a wrong endpoint is what the user has to fix.
                failure = ObjectStoreError(.transport("\(error.message) at \(Self.origin(of: request.url))"), url: url, attempts: attempt)
            }
            let spread = jitter.withLock { $0.next() }
            switch retry.decide(attempt: attempt, outcome: outcome, jitter: spread) {
            case .done, .fail: throw explained(failure)
            case .retry(let delay):
                counters.withLock { $0.retries += 1 }
                logger.debug("retrying", metadata: ["url": "\(url)", "attempt": "\(attempt)", "reason": "\(failure)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    static let maxRedirects = 5

    /// An S3 refusal of an unsigned request says that no credentials were found: servers answer
    /// those with 403, 400 or even 500 and never say why.
    func explained(_ failure: ObjectStoreError) -> ObjectStoreError {
        guard failure.url.hasPrefix("s3://"), credentials == nil, !s3.anonymous, let status = failure.status,
            status == 401 || status >= 400 && status != 404 && status != 412
        else {
            return failure
        }
        var explained = failure
        explained.hint =
            "no AWS credentials were found, so the request went unsigned: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE), or use --anonymous for a public bucket"
        return explained
    }

    /// A `Location` header's target as an absolute URL: absolute, scheme-relative (`//host/p`),
    /// absolute-path (`/p`) or relative to the current URL's directory.
    static func resolve(_ target: String, against base: String) -> String {
        if target.hasPrefix("http://") || target.hasPrefix("https://") || target.contains("://") { return target }
        let origin = origin(of: base)
        if target.hasPrefix("//") { return String(base.prefix { $0 != ":" }) + ":" + target }
        if target.hasPrefix("/") { return origin + target }
        let path = String(base.dropFirst(origin.count).prefix { $0 != "?" && $0 != "#" })
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? "/"
        return origin + directory + target
    }

    /// `scheme://host:port` of a URL.
    static func origin(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        let host = rest.prefix { $0 != "/" && $0 != "?" }
        return String(url[..<schemeEnd.upperBound]) + host
    }

    private func s3ErrorCode(_ body: [UInt8]) -> String? {
        guard !body.isEmpty, body.count < 1 << 16 else { return nil }
        return XMLFields.first("Code", in: String(decoding: body, as: UTF8.self))
    }

    // MARK: S3 addressing and signing

    /// The HTTP request for an S3 object or bucket operation.
    func s3Request(
        method: HTTPRequest.Method, bucket: String, key: String, query: [(String, String)] = [],
        headers: [(String, String)] = [], maxBody: Int
    ) -> HTTPRequest {
        let host: String
        let scheme: String
        var path: String
        if let endpoint = s3.endpoint {
            let parts = endpoint.components(separatedBy: "://")
            scheme = parts.count == 2 ? parts[0] : "https"
            host = parts.count == 2 ? parts[1] : parts[0]
            path = "/" + uriEncode(bucket, keepSlash: false) + "/" + uriEncode(key, keepSlash: true)
        } else {
            scheme = "https"
            host = bucket.contains(".") ? "s3.\(s3.region).amazonaws.com" : "\(bucket).s3.\(s3.region).amazonaws.com"
            path = (bucket.contains(".") ? "/" + bucket : "") + "/" + uriEncode(key, keepSlash: true)
        }
        if key.isEmpty && path.hasSuffix("//") { path.removeLast() }
        var all = headers
        if s3.requesterPays { all.append(("x-amz-request-payer", "requester")) }
        if let credentials {
            all += SigV4.sign(
                method: method.rawValue, host: host, path: path, query: query, headers: all,
                credentials: credentials, region: s3.region, date: Date())
        }
        let queryString = query.map { uriEncode($0.0, keepSlash: false) + "=" + uriEncode($0.1, keepSlash: false) }.joined(separator: "&")
        let url = "\(scheme)://\(host)\(path)" + (queryString.isEmpty ? "" : "?" + queryString)
        return HTTPRequest(method: method, url: url, headers: all, maxBodyBytes: maxBody)
    }

    // MARK: Listing

    /// Expands sources (S3 prefixes and globs, HTTP URLs, local paths and globs) to objects with
    /// size and identity, in source order, sorted within each glob, without duplicates.
    public func list(_ sources: [String], http: HTTPDescription = HTTPDescription()) async throws -> [ListedObject] {
        var result: [ListedObject] = []
        var seen: Set<String> = []
        // Named objects (HTTP URLs, S3 keys without wildcards) are described concurrently, in
        // runs between the sources that list (globs, prefixes, local paths): a reference file
        // or an Icechunk snapshot names hundreds of objects, and a HEAD at a time costs a round
        // trip each.
        var named: [NamedObject] = []
        var firstBytesBudget = http.budget
        func flushNamed() async throws {
            guard !named.isEmpty else { return }
            let httpURLs = named.compactMap { if case .http(let url) = $0 { url } else { nil } }
            var withFirstBytes = http.firstBytesPlan(httpURLs, budget: &firstBytesBudget)[...]
            let plan = named.map { object -> (NamedObject, Bool) in
                guard case .http = object else { return (object, false) }
                return (object, withFirstBytes.popFirst() ?? false)
            }
            let objects = try await withThrowingTaskGroup(of: (Int, ListedObject).self) { group in
                for (index, (object, firstBytes)) in plan.enumerated() {
                    group.addTask {
                        switch object {
                        case .http(let url): (index, try await self.describe(httpURL: url, firstBytes: firstBytes, http: http))
                        case .s3(let bucket, let key): (index, try await self.headS3(bucket: bucket, key: key))
                        }
                    }
                }
                var out = [ListedObject?](repeating: nil, count: plan.count)
                for try await (index, object) in group { out[index] = object }
                return out.compactMap { $0 }
            }
            for object in objects where seen.insert(object.url).inserted { result.append(object) }
            named = []
        }
        for source in sources {
            switch try Location(parsing: source) {
            case .local:
                try await flushNamed()
                do {
                    for object in try LocalStore.list([source]) where seen.insert(object.url).inserted { result.append(object) }
                } catch let error as ListingError {
                    throw ObjectStoreError(.invalidLocation(error.description), url: source)
                }
            case .http(let url):
                named.append(.http(url))
            case .s3(let bucket, let key):
                if Self.namesOneS3Object(key) {
                    named.append(.s3(bucket: bucket, key: key))
                    continue
                }
                try await flushNamed()
                for object in try await listS3(bucket: bucket, pattern: key, source: source) where seen.insert(object.url).inserted {
                    result.append(object)
                }
            }
        }
        try await flushNamed()
        return result
    }

    /// An object a source names exactly, described with a request of its own.
    private enum NamedObject: Sendable {
        case http(String)
        case s3(bucket: String, key: String)
    }

    /// Whether an S3 source's key names one object (no wildcard, not a prefix), which a HEAD
    /// describes, rather than objects a listing finds.
    static func namesOneS3Object(_ key: String) -> Bool {
        !GlobPattern.hasWildcards(key) && !key.isEmpty && !key.hasSuffix("/")
    }

    /// One HTTP URL as a listing describes it: size and identity, and its first bytes when
    /// `firstBytes` (see `HTTPDescription.firstBytesPlan`), else from a HEAD.
    public func describe(httpURL url: String, firstBytes: Bool, http: HTTPDescription) async throws -> ListedObject {
        if firstBytes, let described = try await describeHTTP(url, firstBytes: http.firstBytes) { return described }
        return try await headHTTP(url)
    }

    func listS3(bucket: String, pattern: String, source: String) async throws -> [ListedObject] {
        if Self.namesOneS3Object(pattern) { return [try await headS3(bucket: bucket, key: pattern)] }
        let glob = GlobPattern(pattern.isEmpty || pattern.hasSuffix("/") ? pattern + "**" : pattern)
        let prefix = GlobPattern.hasWildcards(pattern) ? glob.literalPrefix : pattern
        var token: String?
        var found: [ListedObject] = []
        var literal: ListedObject?
        var pages = 0
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let token { query.append(("continuation-token", token)) }
            let url = "s3://\(bucket)/\(prefix)"
            let response = try await send({ s3Request(method: .get, bucket: bucket, key: "", query: query, maxBody: 64 << 20) }, url: url)
            let text = String(decoding: response.body, as: UTF8.self)
            for entry in XMLFields.blocks("Contents", in: text) {
                guard let key = XMLFields.first("Key", in: entry), let size = XMLFields.first("Size", in: entry).flatMap({ UInt64($0) }) else {
                    continue
                }
                let object = ListedObject(
                    url: "s3://\(bucket)/\(key)", size: size, identity: XMLFields.first("ETag", in: entry).map(ObjectIdentity.etag),
                    lastModified: XMLFields.first("LastModified", in: entry).flatMap(HTTPDate.seconds))
                if key == pattern {
                    literal = object
                } else if glob.matches(key), !key.hasSuffix("/") {
                    found.append(object)
                }
            }
            pages += 1
            token = try Self.nextListingToken(in: text, after: token, pages: pages, url: source)
        } while token != nil
        if let literal {
            // `x[1].nc` names an object; as a pattern it would name `x1.nc` instead.
            guard found.isEmpty else {
                throw ObjectStoreError(
                    .invalidLocation(GlobPattern.literalOrPatternMessage(pattern: source, others: found.map(\.url).sorted())), url: source)
            }
            return [literal]
        }
        if found.isEmpty {
            throw ObjectStoreError(.invalidLocation("no objects match this pattern"), url: source)
        }
        return found.sorted { $0.url < $1.url }
    }

    /// Pages of a listing at most (1,000 keys a page in S3): a billion keys, far past any
    /// archive, bounds what a server that never ends its listing can cost.
    static let maxListingPages = 1_000_000

    /// The continuation token of the next page of an S3 listing, or nil after the last page. A
    /// page that says the listing goes on but gives no new token would end it early (a glob
    /// silently matching part of the archive) or never: both are errors.
    static func nextListingToken(in page: String, after previous: String?, pages: Int, url: String) throws -> String? {
        guard XMLFields.first("IsTruncated", in: page) == "true" else { return nil }
        guard let next = XMLFields.first("NextContinuationToken", in: page), !next.isEmpty else {
            throw ObjectStoreError(
                .invalidResponse("the listing says it is truncated but gives no NextContinuationToken, so the rest of it cannot be asked for"),
                url: url)
        }
        guard next != previous else {
            throw ObjectStoreError(.invalidResponse("the listing gives the same continuation token twice, so it would never end"), url: url)
        }
        guard pages < maxListingPages else {
            throw ObjectStoreError(.invalidResponse("the listing goes on past \(maxListingPages) pages"), url: url)
        }
        return next
    }

    func headS3(bucket: String, key: String) async throws -> ListedObject {
        let url = "s3://\(bucket)/\(key)"
        let response = try await send({ s3Request(method: .head, bucket: bucket, key: key, maxBody: 0) }, url: url)
        guard let length = response.contentLength else { throw ObjectStoreError(.invalidResponse("HEAD without Content-Length"), url: url) }
        return ListedObject(
            url: url, size: UInt64(length), identity: response.header("etag").map(ObjectIdentity.etag),
            lastModified: response.header("last-modified").flatMap(HTTPDate.seconds))
    }

    /// Size and identity of an HTTP object: a strong ETag, else Last-Modified.
    func headHTTP(_ url: String) async throws -> ListedObject {
        let response = try await send({ HTTPRequest(method: .head, url: url, maxBodyBytes: 0) }, url: url)
        guard let length = response.contentLength else {
            throw ObjectStoreError(.invalidResponse("HEAD without Content-Length; the server must report sizes"), url: url)
        }
        return ListedObject(
            url: url, size: UInt64(length), identity: Self.identity(of: response),
            lastModified: response.header("last-modified").flatMap(HTTPDate.seconds))
    }

    /// Size, identity and first bytes of an HTTP object from one ranged GET of its start, which
    /// answers like a HEAD and brings a scan's first read along. `nil` when the answer does not
    /// tell the size (no total in `Content-Range`, an empty object's 416, a server that ignores
    /// Range on a large object): the caller sends a HEAD instead.
    func describeHTTP(_ url: String, firstBytes: Int) async throws -> ListedObject? {
        let request = { HTTPRequest(method: .get, url: url, headers: [("Range", "bytes=0-\(firstBytes - 1)")], maxBodyBytes: firstBytes + 1024) }
        let response: HTTPResponse
        do {
            response = try await send(request, url: url)
        } catch let error as ObjectStoreError {
            switch error.kind {
            case .tooLarge, .invalidResponse: return nil
            default:
                if error.status == 416 { return nil }
                throw error
            }
        }
        let size: UInt64
        switch response.status {
        case 206:
            guard let served = response.contentRange, served.first == 0, let total = served.total,
                response.body.count == Int(served.last - served.first + 1)
            else { return nil }
            size = total
        case 200:
            guard response.contentLength == nil || response.contentLength == response.body.count else { return nil }
            size = UInt64(response.body.count)
        default:
            return nil
        }
        var object = ListedObject(
            url: url, size: size, identity: Self.identity(of: response),
            lastModified: response.header("last-modified").flatMap(HTTPDate.seconds))
        object.firstBytes = response.body
        return object
    }

    /// A strong ETag, else Last-Modified.
    private static func identity(of response: HTTPResponse) -> ObjectIdentity? {
        if let etag = response.header("etag"), !etag.hasPrefix("W/") { return .etag(etag) }
        if let modified = response.header("last-modified") { return .lastModified(modified) }
        return nil
    }

    // MARK: Reading

    /// Bytes `range` of the object, failing (never returning other bytes) when the object no
    /// longer has `identity`.
    public func get(_ url: String, range: Range<UInt64>, identity: ObjectIdentity?) async throws -> [UInt8] {
        try await get(url, location: try Location(parsing: url), range: range, identity: identity)
    }

    /// `get` for a location already parsed from `url`.
    public func get(_ url: String, location: Location, range: Range<UInt64>, identity: ObjectIdentity?) async throws -> [UInt8] {
        guard !range.isEmpty else { return [] }
        let headers = Self.rangeHeaders([range], identity: identity)
        let expected = Int(range.count)
        let response: HTTPResponse
        switch location {
        case .s3(let bucket, let key):
            response = try await send(
                { s3Request(method: .get, bucket: bucket, key: key, headers: headers, maxBody: expected + 1024) },
                url: url, expectedLength: expected)
        case .http:
            response = try await send(
                { HTTPRequest(method: .get, url: url, headers: headers, maxBodyBytes: expected + 1024) },
                url: url, expectedLength: expected)
        case .local(let path):
            return try FileSource(path: path).readSynchronously(offset: range.lowerBound, length: expected)
        }
        if response.status == 206 {
            guard let served = response.contentRange, served.first == range.lowerBound else {
                throw ObjectStoreError(.invalidResponse("206 for a different range (\(response.header("content-range") ?? "none"))"), url: url)
            }
            return response.body
        }
        // A server that ignores Range sends the whole object; the part we asked for is in it.
        guard response.body.count >= Int(range.upperBound) else { throw ObjectStoreError(.truncated, url: url, status: response.status) }
        return Array(response.body[Int(range.lowerBound)..<Int(range.upperBound)])
    }
}

extension RemoteStore {
    /// Several ranges of one object, in the order asked. Over HTTP(S) they travel as one
    /// multi-range request (RFC 9110 §14.2; nginx and Apache answer it with one
    /// `multipart/byteranges` body), which saves a request per range where a scan reads many
    /// small structures scattered between data. S3 has no multi-range GET, so S3 objects, and
    /// servers that answer a multi-range request in any other way (remembered per origin), get
    /// one ranged GET per range, concurrently.
    public func get(_ url: String, ranges: [Range<UInt64>], identity: ObjectIdentity?) async throws -> [[UInt8]] {
        guard ranges.count > 1, case .http = try Location(parsing: url) else { return try await getEach(url, ranges: ranges, identity: identity) }
        let origin = Self.origin(of: url)
        let plan = rangeLimits.withLock { $0[origin, default: MultiRangeLimit()].plan(rangeCount: ranges.count) }
        guard plan.first > 1 else { return try await getEach(url, ranges: ranges, identity: identity) }
        var groups: [(ranges: ArraySlice<Range<UInt64>>, probe: Bool)] = [(ranges[..<plan.first], plan.firstIsProbe)]
        var start = plan.first
        while start < ranges.count {
            let end = min(start + plan.perRequest, ranges.count)
            groups.append((ranges[start..<end], false))
            start = end
        }
        return try await Self.inOrder(groups) { group in
            try await self.getGroup(url, ranges: Array(group.ranges), identity: identity, origin: origin, probe: group.probe)
        }.flatMap { $0 }
    }

    /// Ranges per multi-range request that `origin` gets now (tests and diagnostics).
    func rangesPerRequest(origin: String) -> Int {
        rangeLimits.withLock { $0[origin]?.perRequest ?? MultiRangeLimit.initial }
    }

    private func getEach(_ url: String, ranges: [Range<UInt64>], identity: ObjectIdentity?) async throws -> [[UInt8]] {
        try await Self.inOrder(ranges) { range in try await self.get(url, range: range, identity: identity) }
    }

    /// `transform` of every item, concurrently, results in the items' order.
    private static func inOrder<Item: Sendable, Result: Sendable>(
        _ items: [Item], _ transform: @escaping @Sendable (Item) async throws -> Result
    ) async throws -> [Result] {
        if items.count == 1 { return [try await transform(items[0])] }
        return try await withThrowingTaskGroup(of: (Int, Result).self) { group in
            for (index, item) in items.enumerated() { group.addTask { (index, try await transform(item)) } }
            var results = [Result?](repeating: nil, count: items.count)
            for try await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }

    /// `Range` for `ranges` (non-empty) and the identity check: `If-Match` for an ETag,
    /// `If-Unmodified-Since` for a Last-Modified identity.
    static func rangeHeaders(_ ranges: [Range<UInt64>], identity: ObjectIdentity?) -> [(String, String)] {
        var headers = [("Range", "bytes=" + ranges.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ","))]
        switch identity {
        case .etag(let tag)?: headers.append(("If-Match", tag))
        case .lastModified(let date)?: headers.append(("If-Unmodified-Since", date))
        case .file?, nil: break
        }
        return headers
    }

    /// One multi-range request for `ranges`; `probe`: it asks for more ranges than the origin's
    /// current limit (see `MultiRangeLimit`).
    private func getGroup(_ url: String, ranges: [Range<UInt64>], identity: ObjectIdentity?, origin: String, probe: Bool) async throws -> [[UInt8]] {
        let wanted = ranges.filter { !$0.isEmpty }
        guard wanted.count > 1 else {
            if probe { abandonProbe(origin: origin) }
            return try await getEach(url, ranges: ranges, identity: identity)
        }
        let headers = Self.rangeHeaders(wanted, identity: identity)
        // Room for each part's own headers; a server that sends the whole object instead is cut
        // off here rather than downloaded.
        let total = wanted.reduce(0) { $0 + $1.count }
        let limit = total + 256 * wanted.count + 4096
        let response: HTTPResponse
        do {
            response = try await send({ HTTPRequest(method: .get, url: url, headers: headers, maxBodyBytes: limit) }, url: url)
        } catch let error as ObjectStoreError where error.kind == .tooLarge {
            return try await fallBack(
                url, ranges: ranges, identity: identity, origin: origin, count: wanted.count, wholeObject: true,
                probe: probe, reason: "the whole object came back for \(wanted.count) ranges")
        } catch let error as ObjectStoreError where Self.refusesRangeHeader(error.kind) {
            // A server or proxy may refuse a long Range header outright; fewer ranges per
            // request get through (one range per request, if need be, fails the same way).
            return try await fallBack(
                url, ranges: ranges, identity: identity, origin: origin, count: wanted.count, wholeObject: false,
                probe: probe, reason: "status \(error.status.map(String.init) ?? "?") for \(wanted.count) ranges")
        } catch {
            if probe { abandonProbe(origin: origin) }
            throw error
        }
        var parts: [MultipartByteRanges.Part]
        if response.status == 206, let boundary = response.header("content-type").flatMap(MultipartByteRanges.boundary) {
            do { parts = try MultipartByteRanges.parse(response.body, boundary: boundary) } catch {
                // Not learned from: a damaged body says nothing about the server.
                logger.debug("multi-range answer unusable", metadata: ["url": "\(url)", "reason": "\(error)"])
                if probe { abandonProbe(origin: origin) }
                return try await getEach(url, ranges: ranges, identity: identity)
            }
        } else if response.status == 206, let served = response.contentRange, response.body.count == Int(served.last - served.first + 1) {
            // A server may merge all ranges into one.
            parts = [MultipartByteRanges.Part(first: served.first, bytes: response.body[...])]
        } else if response.status == 200 {
            parts = [MultipartByteRanges.Part(first: 0, bytes: response.body[...])]
        } else {
            return try await fallBack(
                url, ranges: ranges, identity: identity, origin: origin, count: wanted.count, wholeObject: false,
                probe: probe, reason: "status \(response.status)")
        }
        guard let slices = MultipartByteRanges.slices(of: parts, for: wanted) else {
            return try await fallBack(
                url, ranges: ranges, identity: identity, origin: origin, count: wanted.count, wholeObject: false,
                probe: probe, reason: "ranges missing from the answer")
        }
        if parts.count == wanted.count {
            let raised = rangeLimits.withLock { limits -> Int? in
                let before = limits[origin, default: MultiRangeLimit()].perRequest
                limits[origin]!.answered(wanted.count, probe: probe)
                return limits[origin]!.perRequest > before ? limits[origin]!.perRequest : nil
            }
            if let raised { logger.debug("server answers more ranges per request", metadata: ["origin": "\(origin)", "ranges per request": "\(raised)"]) }
        } else if probe {
            abandonProbe(origin: origin)
        }
        var next = slices.makeIterator()
        return ranges.map { $0.isEmpty ? [] : next.next()! }
    }

    /// The probe to `origin` ended without telling whether the origin allows its ranges.
    private func abandonProbe(origin: String) {
        rangeLimits.withLock { $0[origin, default: MultiRangeLimit()].abandoned(probe: true) }
    }

    /// Statuses with which servers and proxies refuse a request for too many ranges or too long
    /// a header: bad request, payload or URI too large, range not satisfiable, header fields
    /// too large, not implemented.
    static func refusesRangeHeader(_ kind: ObjectStoreError.Kind) -> Bool {
        guard case .http(let status) = kind else { return false }
        return [400, 413, 414, 416, 431, 501].contains(status)
    }

    /// Tells the origin's limit that a request for `count` ranges was refused, and reads
    /// `ranges` again under the (possibly lowered) limit. A refused request is never asked again
    /// at its size, so every retry asks for fewer, ending at one range per request.
    private func fallBack(
        _ url: String, ranges: [Range<UInt64>], identity: ObjectIdentity?, origin: String, count: Int,
        wholeObject: Bool, probe: Bool, reason: String
    ) async throws -> [[UInt8]] {
        let lowered = rangeLimits.withLock { $0[origin, default: MultiRangeLimit()].refused(count, wholeObject: wholeObject, probe: probe) }
        if let lowered {
            logger.info(
                lowered == 1
                    ? "server does not answer multi-range requests; reading one range per request"
                    : "server answers fewer ranges per request; asking for fewer",
                metadata: ["origin": "\(origin)", "ranges per request": "\(lowered)", "reason": "\(reason)"])
        } else if probe {
            logger.debug(
                "server refused more ranges per request; keeping the limit",
                metadata: ["origin": "\(origin)", "refused": "\(count)", "reason": "\(reason)"])
        }
        return try await get(url, ranges: ranges, identity: identity)
    }
}

/// What listing an HTTP URL fetches. HTTP has no listing API, so each URL costs a request:
/// a HEAD, or a ranged GET of the object's first bytes, which tells the same (size from
/// `Content-Range`, identity from `ETag` or `Last-Modified`) and is a scan's first read.
public struct HTTPDescription: Sendable {
    /// Bytes fetched from each object's start instead of a HEAD; 0 sends HEADs.
    public var firstBytes: Int
    /// Total first bytes kept from one listing (they stay in memory until the files are
    /// scanned); URLs beyond it get a HEAD.
    public var budget: Int
    /// URLs that get a HEAD in any case (for example those whose scan result is cached).
    public var headOnly: @Sendable (String) -> Bool

    public init(firstBytes: Int = 0, budget: Int = 64 << 20, headOnly: @escaping @Sendable (String) -> Bool = { _ in false }) {
        self.firstBytes = firstBytes
        self.budget = budget
        self.headOnly = headOnly
    }

    /// Which of `urls` are described with a GET of their first bytes (the rest get a HEAD), in
    /// order, drawing on `budget`.
    public func firstBytesPlan(_ urls: [String], budget: inout Int) -> [Bool] {
        urls.map { url in
            guard firstBytes > 0, budget >= firstBytes, !headOnly(url) else { return false }
            budget -= firstBytes
            return true
        }
    }
}

/// One remote object as a byte source (every read a ranged GET with the identity check).
public struct RemoteObjectSource: RandomAccessSource {
    public let store: RemoteStore
    public let object: ListedObject

    public init(store: RemoteStore, object: ListedObject) {
        self.store = store
        self.object = object
    }

    public var name: String { object.url }
    public func size() async throws -> UInt64 { object.size }

    public func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        guard offset < object.size, length > 0 else { return [] }
        let end = min(object.size, offset + UInt64(length))
        return try await store.get(object.url, range: offset..<end, identity: object.identity)
    }

    public func read(ranges: [ByteRange]) async throws -> [[UInt8]] {
        let clipped = ranges.map { range -> Range<UInt64> in
            guard range.offset < object.size, range.length > 0 else { return 0..<0 }
            return range.offset..<min(object.size, range.offset + UInt64(range.length))
        }
        return try await store.get(object.url, ranges: clipped, identity: object.identity)
    }
}

/// The handful of S3 XML fields zarrmount reads, without an XML dependency.
enum XMLFields {
    static func first(_ tag: String, in text: String) -> String? {
        guard let open = text.range(of: "<\(tag)>"), let close = text.range(of: "</\(tag)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return unescape(String(text[open.upperBound..<close.lowerBound]))
    }

    static func blocks(_ tag: String, in text: String) -> [String] {
        var out: [String] = []
        var searchFrom = text.startIndex
        while let open = text.range(of: "<\(tag)>", range: searchFrom..<text.endIndex),
            let close = text.range(of: "</\(tag)>", range: open.upperBound..<text.endIndex)
        {
            out.append(String(text[open.upperBound..<close.lowerBound]))
            searchFrom = close.upperBound
        }
        return out
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
