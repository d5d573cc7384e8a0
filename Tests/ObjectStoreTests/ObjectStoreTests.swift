import ByteSource
import Foundation
import Logging
@testable import ObjectStore
import Synchronization
import XCTest

final class SigV4Tests: XCTestCase {
    /// The GET-object example of the S3 SigV4 documentation ("Example: GET Object").
    func testDocumentedExampleSignature() {
        let credentials = Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
        let headers = SigV4.sign(
            method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
            headers: [("Range", "bytes=0-9")], credentials: credentials, region: "us-east-1", date: date,
            alsoSign: ["range"])
        let authorization = headers.first { $0.0 == "Authorization" }?.1
        XCTAssertEqual(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testCredentialsFromEnvironmentAndProfile() throws {
        XCTAssertEqual(
            try Credentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SESSION_TOKEN": "t"]),
            Credentials(accessKeyID: "a", secretAccessKey: "b", sessionToken: "t"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-credentials-\(getpid())").path
        try "[default]\naws_access_key_id = d1\naws_secret_access_key = d2\n\n[science]\naws_access_key_id=s1\naws_secret_access_key = s2\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        XCTAssertEqual(try Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file])?.accessKeyID, "d1")
        XCTAssertEqual(try Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "science"])?.secretAccessKey, "s2")
        XCTAssertThrowsError(try Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "nope"]))
        XCTAssertNil(try Credentials.resolve(environment: ["AWS_SHARED_CREDENTIALS_FILE": file + ".missing"]))
    }
}

final class RetryPolicyTests: XCTestCase {
    let policy = RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(100), maxDelay: .seconds(1))

    func testRetryableOutcomesBackOffWithJitterAndGiveUp() {
        XCTAssertEqual(policy.decide(attempt: 1, outcome: .status(503, retryAfter: nil, s3Code: nil), jitter: 0.5), .retry(after: .milliseconds(50)))
        XCTAssertEqual(policy.decide(attempt: 3, outcome: .status(500, retryAfter: nil, s3Code: nil), jitter: 1), .retry(after: .milliseconds(400)))
        XCTAssertEqual(policy.decide(attempt: 3, outcome: .shortBody, jitter: 0.25), .retry(after: .milliseconds(100)))
        XCTAssertEqual(policy.decide(attempt: 1, outcome: .status(400, retryAfter: nil, s3Code: "SlowDown"), jitter: 0), .retry(after: .zero))
        XCTAssertEqual(
            policy.decide(attempt: 2, outcome: .status(429, retryAfter: .seconds(30), s3Code: nil), jitter: 0), .retry(after: .seconds(1)),
            "Retry-After is honoured up to the maximum delay")
        XCTAssertEqual(policy.decide(attempt: 4, outcome: .status(503, retryAfter: nil, s3Code: nil), jitter: 0), .fail)
        XCTAssertEqual(policy.decide(attempt: 1, outcome: .transport(retryable: true), jitter: 0), .retry(after: .zero))
    }

    func testPermanentOutcomesFailAtOnce() {
        for status in [400, 403, 404, 412] {
            XCTAssertEqual(policy.decide(attempt: 1, outcome: .status(status, retryAfter: nil, s3Code: nil), jitter: 0), .fail)
        }
        XCTAssertEqual(policy.decide(attempt: 1, outcome: .transport(retryable: false), jitter: 0), .fail)
        XCTAssertEqual(policy.decide(attempt: 1, outcome: .success, jitter: 0), .done)
    }
}

/// Scripted responses in order: the retry and validation logic of `RemoteStore` without sockets.
final class ScriptedTransport: HTTPTransport {
    let script: Mutex<[Result<HTTPResponse, TransportError>]>
    let requests = Mutex<[HTTPRequest]>([])

    init(_ script: [Result<HTTPResponse, TransportError>]) { self.script = Mutex(script) }

    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.withLock { $0.append(request) }
        let next = script.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        guard let next else { throw TransportError(code: 7, message: "script exhausted", url: request.url) }
        return try next.get()
    }
}

final class RemoteStoreTests: XCTestCase {
    private func store(_ transport: ScriptedTransport, anonymous: Bool = false) -> RemoteStore {
        var s3 = S3Options(endpoint: "http://127.0.0.1:9", region: "us-east-1", environment: [:])
        s3.anonymous = anonymous
        return RemoteStore(
            transport: transport, s3: s3, retry: RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(1)),
            credentials: Credentials(accessKeyID: "k", secretAccessKey: "SECRET-never-sent"), logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() })
    }

    private func partial(_ bytes: [UInt8], first: Int, total: Int) -> HTTPResponse {
        HTTPResponse(
            status: 206,
            headers: [
                ("Content-Range", "bytes \(first)-\(first + bytes.count - 1)/\(total)"),
                ("Content-Length", "\(bytes.count)"),
            ], body: bytes)
    }

    func testRangedGetCarriesRangeIfMatchAndSignatureAndRetriesShortBodies() async throws {
        let short = HTTPResponse(status: 206, headers: [("Content-Range", "bytes 10-19/100"), ("Content-Length", "10")], body: [1, 2, 3])
        let transport = ScriptedTransport([
            .success(HTTPResponse(status: 503, headers: [], body: Array("<Error><Code>SlowDown</Code></Error>".utf8))),
            .success(short), .success(partial(Array(0..<10), first: 10, total: 100)),
        ])
        let bytes = try await store(transport).get("s3://bucket/dir/a b.nc", range: 10..<20, identity: .etag("\"abc\""))
        XCTAssertEqual(bytes, Array(0..<10))
        let sent = transport.requests.withLock { $0 }
        XCTAssertEqual(sent.count, 3)
        XCTAssertEqual(sent[0].url, "http://127.0.0.1:9/bucket/dir/a%20b.nc")
        XCTAssertEqual(sent[0].header("Range"), "bytes=10-19")
        XCTAssertEqual(sent[0].header("If-Match"), "\"abc\"")
        XCTAssertTrue(sent[0].header("Authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=k/") ?? false)
        XCTAssertFalse(
            sent.contains { $0.headers.contains { $0.1.contains("SECRET-never-sent") } || $0.url.contains("SECRET") },
            "the secret key never leaves the process")
    }

    func testErrorsNameTheObjectAndSayWhatToDo() async {
        let cases: [(Int, String)] = [(403, "--anonymous"), (404, "not found"), (412, "changed since it was scanned")]
        for (status, phrase) in cases {
            let transport = ScriptedTransport([.success(HTTPResponse(status: status, headers: [], body: []))])
            do {
                _ = try await store(transport).get("s3://bucket/key.nc", range: 0..<8, identity: .etag("\"e\""))
                XCTFail("HTTP \(status) must fail")
            } catch let error as ObjectStoreError {
                XCTAssertTrue(error.description.contains("s3://bucket/key.nc") && error.description.contains(phrase), error.description)
            } catch { XCTFail("untyped error \(error)") }
            XCTAssertEqual(transport.requests.withLock { $0.count }, 1, "HTTP \(status) is not retried")
        }
        let failing = ScriptedTransport([
            .failure(TransportError(code: 7, message: "Couldn't connect to server", url: "u")),
            .failure(TransportError(code: 7, message: "Couldn't connect to server", url: "u")),
            .failure(TransportError(code: 7, message: "Couldn't connect to server", url: "u")),
        ])
        do {
            _ = try await store(failing).get("http://127.0.0.1:9/x.nc", range: 0..<8, identity: nil)
            XCTFail("an unreachable server must fail")
        } catch let error as ObjectStoreError {
            XCTAssertEqual(error.attempts, 3)
            XCTAssertTrue(error.description.contains("after 3 attempts") && error.description.contains("Couldn't connect"), error.description)
        } catch { XCTFail("untyped error \(error)") }
    }

    func testListingPaginatesAndFiltersWithTheGlob() async throws {
        func page(_ keys: [String], next: String?) -> HTTPResponse {
            let contents = keys.map { "<Contents><Key>\($0)</Key><Size>10</Size><ETag>&quot;e-\($0)&quot;</ETag></Contents>" }.joined()
            let tail = next.map { "<IsTruncated>true</IsTruncated><NextContinuationToken>\($0)</NextContinuationToken>" } ?? "<IsTruncated>false</IsTruncated>"
            return HTTPResponse(status: 200, headers: [], body: Array("<ListBucketResult>\(contents)\(tail)</ListBucketResult>".utf8))
        }
        let transport = ScriptedTransport([.success(page(["d/2060/a.nc", "d/2060/a.txt"], next: "t1/=+")), .success(page(["d/2061/b.nc"], next: nil))])
        let objects = try await store(transport, anonymous: true).list(["s3://bkt/d/**/*.nc"])
        XCTAssertEqual(objects.map(\.url), ["s3://bkt/d/2060/a.nc", "s3://bkt/d/2061/b.nc"])
        XCTAssertEqual(objects.first?.identity, .etag("\"e-d/2060/a.nc\""))
        let sent = transport.requests.withLock { $0 }
        XCTAssertTrue(sent[0].url.contains("list-type=2") && sent[0].url.contains("prefix=d%2F"), sent[0].url)
        XCTAssertTrue(sent[1].url.contains("continuation-token=t1%2F%3D%2B"), sent[1].url)
        XCTAssertNil(sent[0].header("Authorization"), "--anonymous sends no signature")
    }

    func testAListingThatSaysItGoesOnWithoutAWayToAskIsAnError() async throws {
        func page(_ key: String, tail: String) -> Result<HTTPResponse, TransportError> {
            .success(
                HTTPResponse(
                    status: 200, headers: [],
                    body: Array("<ListBucketResult><Contents><Key>\(key)</Key><Size>10</Size></Contents>\(tail)</ListBucketResult>".utf8)))
        }
        // Truncated without a token: the glob matched the first page only, and the scan went on.
        let untokened = ScriptedTransport([page("d/a.nc", tail: "<IsTruncated>true</IsTruncated>"), page("d/b.nc", tail: "")])
        do {
            let objects = try await store(untokened, anonymous: true).list(["s3://bkt/d/*.nc"])
            XCTFail("a truncated listing must not pass as whole: \(objects.map(\.url))")
        } catch let error as ObjectStoreError {
            XCTAssertTrue(error.description.contains("s3://bkt/d/*.nc") && error.description.contains("no NextContinuationToken"), error.description)
        }
        // The same token again would ask for the same page forever.
        let looping = ScriptedTransport(
            (0..<3).map { _ in page("d/a.nc", tail: "<IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>") })
        do {
            _ = try await store(looping, anonymous: true).list(["s3://bkt/d/*.nc"])
            XCTFail("a listing that repeats its token must stop")
        } catch let error as ObjectStoreError {
            XCTAssertTrue(error.description.contains("same continuation token twice"), error.description)
        }
        XCTAssertEqual(looping.requests.withLock { $0.count }, 2)
        XCTAssertThrowsError(
            try RemoteStore.nextListingToken(
                in: "<IsTruncated>true</IsTruncated><NextContinuationToken>n</NextContinuationToken>", after: "m",
                pages: RemoteStore.maxListingPages, url: "s3://b/x"))
        XCTAssertNil(try RemoteStore.nextListingToken(in: "<IsTruncated>false</IsTruncated>", after: nil, pages: 1, url: "s3://b/x"))
    }

    func testLocations() throws {
        XCTAssertEqual(try Location(parsing: "s3://b/k/x.nc"), .s3(bucket: "b", key: "k/x.nc"))
        XCTAssertEqual(try Location(parsing: "https://h/p.nc"), .http(url: "https://h/p.nc"))
        XCTAssertEqual(try Location(parsing: "file:///d/x.nc"), .local(path: "/d/x.nc"))
        XCTAssertThrowsError(try Location(parsing: "gs://b/k"))
        XCTAssertThrowsError(try Location(parsing: "s3:///k"))
        // Any "://" names a scheme, wherever it is; a path with colons and slashes otherwise stays a path.
        XCTAssertThrowsError(try Location(parsing: "data/x:://y.nc"))
        XCTAssertThrowsError(try Location(parsing: "ftp://h/x.nc"))
        XCTAssertEqual(try Location(parsing: "data/a::/b:/c.nc"), .local(path: "data/a::/b:/c.nc"))
        XCTAssertEqual(try Location(parsing: "data/é:/:/x.nc"), .local(path: "data/é:/:/x.nc"))
        XCTAssertEqual(uriEncode("a b/c~d*e", keepSlash: true), "a%20b/c~d%2Ae")
    }
}

final class URLTemplateTests: XCTestCase {
    func testDatesAndIntegers() throws {
        let daily = URLTemplate(template: "http://h/WRFDS_{date}.nc", range: try URLTemplate.parseRange("2060-02-27..2060-03-02"))
        XCTAssertEqual(
            try daily.expand(),
            [
                "http://h/WRFDS_2060-02-27.nc", "http://h/WRFDS_2060-02-28.nc", "http://h/WRFDS_2060-02-29.nc",
                "http://h/WRFDS_2060-03-01.nc", "http://h/WRFDS_2060-03-02.nc",
            ], "2060 is a leap year")
        let compact = URLTemplate(template: "s3://b/{date:%Y}/{date:%j}.nc", range: .dates(from: "2060-12-31", to: "2060-12-31"))
        XCTAssertEqual(try compact.expand(), ["s3://b/2060/366.nc"])
        let numbered = URLTemplate(template: "http://h/member_{i:03}.nc", range: try URLTemplate.parseRange("8..10"))
        XCTAssertEqual(try numbered.expand(), ["http://h/member_008.nc", "http://h/member_009.nc", "http://h/member_010.nc"])
        XCTAssertThrowsError(try URLTemplate(template: "http://h/{date}.nc", range: .integers(from: 0, to: 2)).expand())
        XCTAssertThrowsError(try URLTemplate.parseRange("2060-01-01"))
    }
}

final class HTTPDateTests: XCTestCase {
    func testServerTimestampsBecomeUnixSeconds() {
        XCTAssertEqual(HTTPDate.seconds("Sun, 06 Nov 1994 08:49:37 GMT"), 784_111_777)
        XCTAssertEqual(HTTPDate.seconds("2026-11-27T02:00:00.000Z"), 1_795_744_800)
        XCTAssertEqual(HTTPDate.seconds("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(HTTPDate.seconds("Thu, 29 Feb 2024 23:59:59 GMT"), 1_709_251_199)
        XCTAssertNil(HTTPDate.seconds("yesterday"))
        XCTAssertNil(HTTPDate.seconds("Sun, 06 Foo 1994 08:49:37 GMT"))
        XCTAssertNil(HTTPDate.seconds("2026-13-27T02:00:00Z"))
    }
}

final class MultipartByteRangesTests: XCTestCase {
    private func body(_ parts: [(Int, [UInt8])], boundary: String, total: Int) -> [UInt8] {
        var out = Array("preamble".utf8)
        for (first, bytes) in parts {
            out += Array(
                "\r\n--\(boundary)\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes \(first)-\(first + bytes.count - 1)/\(total)\r\n\r\n".utf8)
            out += bytes
        }
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }

    func testPartsAreCutByTheirContentRangeNotBySearchingForTheBoundary() throws {
        let boundary = "00000000000000000776"
        // The second part's data contains the boundary itself.
        let tricky = Array("\r\n--\(boundary)\r\n".utf8)
        let parsed = try MultipartByteRanges.parse(
            body([(1000, [1, 2, 3]), (40, tricky), (7, [9])], boundary: boundary, total: 5000),
            boundary: boundary)
        XCTAssertEqual(parsed.map(\.first), [1000, 40, 7])
        XCTAssertEqual(parsed.map { Array($0.bytes) }, [[1, 2, 3], tricky, [9]])
        // Slices come back in the order asked, from whichever part holds them.
        XCTAssertEqual(MultipartByteRanges.slices(of: parsed, for: [7..<8, 1001..<1003, 40..<42]), [[9], [2, 3], Array(tricky[0..<2])])
        XCTAssertNil(MultipartByteRanges.slices(of: parsed, for: [1002..<1004]), "a range the answer does not hold")
    }

    func testDamagedBodiesAreErrors() {
        let boundary = "b"
        let good = body([(0, [1, 2, 3, 4]), (10, [5, 6])], boundary: boundary, total: 20)
        XCTAssertThrowsError(try MultipartByteRanges.parse(Array(good.prefix(good.count - 12)), boundary: boundary), "cut short")
        let noRange = Array(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "Content-Range: bytes 10-11/20", with: "X: y").utf8)
        XCTAssertThrowsError(try MultipartByteRanges.parse(noRange, boundary: boundary), "a part without Content-Range")
        let lying = Array(String(decoding: good, as: UTF8.self).replacingOccurrences(of: "bytes 0-3/20", with: "bytes 0-2/20").utf8)
        XCTAssertThrowsError(try MultipartByteRanges.parse(lying, boundary: boundary), "a length that does not reach the boundary")
        XCTAssertThrowsError(try MultipartByteRanges.parse(good, boundary: "other"), "another boundary")
    }

    func testBoundaryFromContentType() {
        XCTAssertEqual(MultipartByteRanges.boundary(contentType: "multipart/byteranges; boundary=00000000000000000776"), "00000000000000000776")
        XCTAssertEqual(MultipartByteRanges.boundary(contentType: "Multipart/ByteRanges;charset=x; Boundary=\"a b\""), "a b")
        XCTAssertNil(MultipartByteRanges.boundary(contentType: "application/octet-stream"))
        XCTAssertNil(MultipartByteRanges.boundary(contentType: "multipart/byteranges"))
    }
}

/// A store without credentials over `transport`, retrying once, quietly.
func anonymousStore(_ transport: any HTTPTransport) -> RemoteStore {
    RemoteStore(
        transport: transport, s3: S3Options(endpoint: "http://127.0.0.1:9", region: "us-east-1", environment: [:]),
        retry: RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(1)), credentials: nil,
        logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() })
}

extension HTTPResponse {
    /// The response, or the transport's error for a body larger than the request allows (as
    /// `CurlEngine` aborts such a transfer).
    func withinBodyLimit(of request: HTTPRequest) throws -> HTTPResponse {
        if body.count > request.maxBodyBytes {
            throw TransportError(code: TransportError.bodyLimitCode, message: "response larger than expected", url: request.url)
        }
        return self
    }
}

/// An HTTP server holding one object, answering ranged GETs the ways real servers do: a
/// multipart body for several ranges (up to `maxRanges`, beyond which the whole object comes
/// back, as nginx's `max_ranges` and Apache's `MaxRanges` do), or all ranges merged into one.
final class RangeServingTransport: HTTPTransport {
    enum Style { case multipart, mergedIntoOne }
    let object: [UInt8]
    let maxRanges: Int
    /// The status for more than `maxRanges` ranges instead of the whole object (a server or
    /// proxy that refuses a long `Range` header, e.g. 400 or 416).
    let refusal: Int?
    let style: Style
    let requests = Mutex<[HTTPRequest]>([])

    init(size: Int, maxRanges: Int = .max, refusal: Int? = nil, style: Style = .multipart) {
        object = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        self.maxRanges = maxRanges
        self.refusal = refusal
        self.style = style
    }

    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.withLock { $0.append(request) }
        let spec = request.header("Range")!.dropFirst("bytes=".count)
        let ranges = spec.split(separator: ",").map { part -> ClosedRange<Int> in
            let ends = part.split(separator: "-").map { Int($0)! }
            return ends[0]...min(ends[1], object.count - 1)
        }
        let response: HTTPResponse
        if ranges.count > maxRanges, let refusal {
            response = HTTPResponse(status: refusal, headers: [("Content-Length", "0")], body: [])
        } else if ranges.count > maxRanges {
            response = HTTPResponse(status: 200, headers: [("Content-Length", "\(object.count)")], body: object)
        } else if ranges.count == 1 || style == .mergedIntoOne {
            let merged = ranges.map(\.lowerBound).min()!...ranges.map(\.upperBound).max()!
            response = HTTPResponse(
                status: 206,
                headers: [
                    ("Content-Range", "bytes \(merged.lowerBound)-\(merged.upperBound)/\(object.count)"),
                    ("Content-Length", "\(merged.count)"),
                ], body: Array(object[merged]))
        } else {
            var body: [UInt8] = []
            for range in ranges.reversed() {  // order is the server's choice
                body += Array("\r\n--XYZ\r\nContent-Range: bytes \(range.lowerBound)-\(range.upperBound)/\(object.count)\r\n\r\n".utf8)
                body += object[range]
            }
            body += Array("\r\n--XYZ--\r\n".utf8)
            response = HTTPResponse(
                status: 206,
                headers: [
                    ("Content-Type", "multipart/byteranges; boundary=XYZ"),
                    ("Content-Length", "\(body.count)"),
                ], body: body)
        }
        return try response.withinBodyLimit(of: request)
    }
}

final class MultiRangeTests: XCTestCase {
    private func store(_ transport: any HTTPTransport) -> RemoteStore { anonymousStore(transport) }

    /// Ten ranges 10 kB apart, of different lengths, and an empty one.
    private let ranges: [Range<UInt64>] = {
        var all: [Range<UInt64>] = []
        for index in 0..<10 {
            let start = UInt64(index * 10_000)
            all.append(start..<(start + 100 + UInt64(index)))
        }
        return all + [0..<0]
    }()

    func testSeveralRangesTravelAsOneRequestWithTheIdentityCheck() async throws {
        let server = RangeServingTransport(size: 200_000)
        let got = try await store(server).get("http://h/a.nc", ranges: ranges, identity: .etag("\"e1\""))
        XCTAssertEqual(got, ranges.map { Array(server.object[Int($0.lowerBound)..<Int($0.upperBound)]) })
        let sent = server.requests.withLock { $0 }
        XCTAssertEqual(sent.count, 1)
        XCTAssertEqual(sent[0].header("If-Match"), "\"e1\"")
        XCTAssertEqual(sent[0].header("Range")?.split(separator: ",").count, 10, "empty ranges are not asked for")
    }

    func testAServerWithFewerRangesPerRequestIsLearnedOnce() async throws {
        let server = RangeServingTransport(size: 200_000, maxRanges: 3)
        let remote = store(server)
        let got = try await remote.get("http://h/a.nc", ranges: ranges, identity: nil)
        XCTAssertEqual(got, ranges.map { Array(server.object[Int($0.lowerBound)..<Int($0.upperBound)]) })
        let first = server.requests.withLock { sent -> [HTTPRequest] in
            defer { sent = [] }; return sent
        }
        XCTAssertGreaterThan(first.count, 4, "the whole-object answers were cut off and the ranges asked again")
        // The same origin is now asked for at most as many ranges as it answers (10/2 → 5 → 2).
        _ = try await remote.get("http://h/b.nc", ranges: ranges, identity: nil)
        let second = server.requests.withLock { $0 }
        XCTAssertEqual(second.count, 5)
        XCTAssertTrue(second.allSatisfy { $0.header("Range")!.split(separator: ",").count <= 2 })
    }

    /// `count` ranges 1 kB apart, each of 50 to 99 bytes.
    private func manyRanges(_ count: Int) -> [Range<UInt64>] {
        (0..<count).map { index in
            let start = UInt64(index * 1_000)
            return start..<(start + 50 + UInt64(index % 50))
        }
    }

    /// Requests sent since the last call, as their number of ranges.
    private func takeRangeCounts(_ server: RangeServingTransport) -> [Int] {
        server.requests.withLock { sent -> [Int] in
            defer { sent = [] }
            return sent.map { $0.header("Range")!.split(separator: ",").count }
        }
    }

    func testAServerThatAllowsMoreRangesIsAskedForMoreOneProbeAtATime() async throws {
        let server = RangeServingTransport(size: 200_000)
        let remote = store(server)
        let batch = manyRanges(100)
        let expected = batch.map { Array(server.object[Int($0.lowerBound)..<Int($0.upperBound)]) }
        var requestsPerBatch: [Int] = []
        var largestRequest: [Int] = []
        for _ in 0..<5 {
            let got = try await remote.get("http://h/a.nc", ranges: batch, identity: nil)
            XCTAssertEqual(got, expected)
            let counts = takeRangeCounts(server)
            requestsPerBatch.append(counts.count)
            largestRequest.append(counts.max()!)
            XCTAssertEqual(counts.reduce(0, +), 100, "every range asked exactly once: \(counts)")
        }
        // 16 per request, and one probe per batch for twice the limit (32, 64, 128) until the
        // whole batch fits in one request.
        XCTAssertEqual(largestRequest, [32, 64, 100, 100, 100])
        XCTAssertEqual(requestsPerBatch, [6, 3, 1, 1, 1])
        XCTAssertEqual(remote.rangesPerRequest(origin: "http://h"), 100)
    }

    func testARefusedProbeCostsOneRequestAndIsNotRepeated() async throws {
        let server = RangeServingTransport(size: 200_000, maxRanges: 20)
        let remote = store(server)
        let batch = manyRanges(100)
        let expected = batch.map { Array(server.object[Int($0.lowerBound)..<Int($0.upperBound)]) }
        var all: [[Int]] = []
        for _ in 0..<3 {
            let got = try await remote.get("http://h/a.nc", ranges: batch, identity: nil)
            XCTAssertEqual(got, expected)
            all.append(takeRangeCounts(server))
        }
        // The probe for 32 gets the whole object, cut off; its 32 ranges go again as 16 + 16.
        XCTAssertEqual(all[0].filter { $0 > 20 }, [32])
        XCTAssertEqual(all[0].count, 8)
        for later in all.dropFirst() {
            XCTAssertEqual(later.count, 7)
            XCTAssertTrue(later.allSatisfy { $0 <= 16 }, "\(later)")
        }
        XCTAssertEqual(remote.rangesPerRequest(origin: "http://h"), 16)
    }

    func testAProbeRefusedWithAStatusKeepsTheLimitThatWorked() async throws {
        let server = RangeServingTransport(size: 200_000, maxRanges: 20, refusal: 400)
        let remote = store(server)
        let batch = manyRanges(100)
        let expected = batch.map { Array(server.object[Int($0.lowerBound)..<Int($0.upperBound)]) }
        for _ in 0..<3 {
            let got = try await remote.get("http://h/a.nc", ranges: batch, identity: nil)
            XCTAssertEqual(got, expected)
        }
        let counts = takeRangeCounts(server)
        XCTAssertEqual(counts.filter { $0 > 16 }, [32], "one probe, refused")
        XCTAssertEqual(counts.count, 8 + 7 + 7)
        XCTAssertEqual(remote.rangesPerRequest(origin: "http://h"), 16, "not one range per request: 16 were answered")
    }

    func testMergedAnswersAndS3ObjectsGiveTheSameBytes() async throws {
        // Servers may merge nearby ranges (Apache does): one part holding them all.
        let merging = RangeServingTransport(size: 200_000, style: .mergedIntoOne)
        let near: [Range<UInt64>] = [0..<100, 150..<300, 400..<500]
        let merged = try await store(merging).get("http://h/a.nc", ranges: near, identity: nil)
        XCTAssertEqual(merged, near.map { Array(merging.object[Int($0.lowerBound)..<Int($0.upperBound)]) })
        XCTAssertEqual(merging.requests.withLock { $0.count }, 1)

        let expected = ranges.map { Array(merging.object[Int($0.lowerBound)..<Int($0.upperBound)]) }

        // S3 has no multi-range GET: one request per range.
        let s3 = RangeServingTransport(size: 200_000)
        let fromS3 = try await store(s3).get("s3://bucket/a.nc", ranges: ranges, identity: .etag("\"e\""))
        XCTAssertEqual(fromS3, expected)
        let sent = s3.requests.withLock { $0 }
        XCTAssertEqual(sent.count, 10)
        XCTAssertTrue(sent.allSatisfy { !$0.header("Range")!.contains(",") })
    }
}

/// Objects by URL with ETags, answering HEAD and single-range GETs as nginx does (a range past
/// the end is cut to the object, an empty object gets 416), or ignoring Range altogether.
final class ObjectServingTransport: HTTPTransport {
    let objects: [String: [UInt8]]
    let ignoresRange: Bool
    let requests = Mutex<[HTTPRequest]>([])

    init(sizes: [String: Int], ignoresRange: Bool = false) {
        objects = sizes.mapValues { size in (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) } }
        self.ignoresRange = ignoresRange
    }

    func etag(_ url: String) -> String { "\"\(objects[url]!.count)-e\"" }

    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.withLock { $0.append(request) }
        guard let object = objects[request.url] else { return HTTPResponse(status: 404, headers: [], body: []) }
        let validators = [("ETag", etag(request.url)), ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")]
        if request.method == .head { return HTTPResponse(status: 200, headers: validators + [("Content-Length", "\(object.count)")], body: []) }
        let response: HTTPResponse
        if let spec = request.header("Range"), !ignoresRange {
            let ends = spec.dropFirst("bytes=".count).split(separator: "-").map { Int($0)! }
            guard ends[0] < object.count else {
                return HTTPResponse(status: 416, headers: [("Content-Range", "bytes */\(object.count)")], body: [])
            }
            let range = ends[0]...min(ends[1], object.count - 1)
            response = HTTPResponse(
                status: 206,
                headers: validators + [
                    ("Content-Range", "bytes \(range.lowerBound)-\(range.upperBound)/\(object.count)"),
                    ("Content-Length", "\(range.count)"),
                ], body: Array(object[range]))
        } else {
            response = HTTPResponse(status: 200, headers: validators + [("Content-Length", "\(object.count)")], body: object)
        }
        return try response.withinBodyLimit(of: request)
    }
}

final class HTTPListingTests: XCTestCase {
    private func store(_ transport: any HTTPTransport) -> RemoteStore { anonymousStore(transport) }

    /// One GET of each object's start tells what a HEAD would, and brings those bytes along.
    func testAGetOfTheFirstBytesListsLikeAHead() async throws {
        let server = ObjectServingTransport(sizes: ["http://h/big.nc": 100_000, "http://h/small.nc": 700, "http://h/empty.nc": 0])
        let urls = ["http://h/big.nc", "http://h/small.nc", "http://h/empty.nc"]
        let described = try await store(server).list(urls, http: HTTPDescription(firstBytes: 4096))
        let headed = try await store(
            ObjectServingTransport(sizes: [
                "http://h/big.nc": 100_000, "http://h/small.nc": 700,
                "http://h/empty.nc": 0,
            ])
        ).list(urls)
        XCTAssertEqual(described.map(\.url), urls)
        XCTAssertEqual(described.map(\.size), [100_000, 700, 0])
        XCTAssertEqual(described.map(\.size), headed.map(\.size))
        XCTAssertEqual(described.map(\.identity), headed.map(\.identity))
        XCTAssertEqual(described.map(\.lastModified), headed.map(\.lastModified))
        XCTAssertEqual(described[0].firstBytes, Array(server.objects["http://h/big.nc"]![0..<4096]))
        XCTAssertEqual(described[1].firstBytes, server.objects["http://h/small.nc"])
        XCTAssertEqual(described[2].firstBytes, [], "an empty object answers 416, and then a HEAD")
        XCTAssertTrue(headed.allSatisfy(\.firstBytes.isEmpty))
        let sent = server.requests.withLock { $0 }
        XCTAssertEqual(sent.filter { $0.method == .head }.map(\.url), ["http://h/empty.nc"])
        XCTAssertTrue(
            sent.filter { $0.method == .get }.allSatisfy { $0.header("Range") == "bytes=0-4095" && $0.header("If-Match") == nil },
            "\(sent.map { "\($0.method) \($0.url) \($0.headers)" })")
    }

    /// A server that ignores Range sends a small object whole (kept) and a large one is cut off
    /// at the body limit (then a HEAD); past the budget, and for `headOnly` URLs, HEAD alone.
    func testRangeIgnoringServersBudgetAndHeadOnlyFallBackToHead() async throws {
        let ignoring = ObjectServingTransport(sizes: ["http://h/big.nc": 100_000, "http://h/small.nc": 700], ignoresRange: true)
        let listed = try await store(ignoring).list(["http://h/big.nc", "http://h/small.nc"], http: HTTPDescription(firstBytes: 4096))
        XCTAssertEqual(listed.map(\.size), [100_000, 700])
        XCTAssertEqual(listed[0].firstBytes, [])
        XCTAssertEqual(listed[1].firstBytes, ignoring.objects["http://h/small.nc"])
        XCTAssertEqual(ignoring.requests.withLock { $0.filter { $0.method == .head }.map(\.url) }, ["http://h/big.nc"])

        let sizes = Dictionary(uniqueKeysWithValues: (0..<5).map { ("http://h/\($0).nc", 10_000) })
        let server = ObjectServingTransport(sizes: sizes)
        let urls = (0..<5).map { "http://h/\($0).nc" }
        let budgeted = try await store(server).list(
            urls,
            http: HTTPDescription(
                firstBytes: 4096, budget: 2 * 4096,
                headOnly: { $0 == "http://h/0.nc" }))
        XCTAssertEqual(budgeted.map(\.size), [UInt64](repeating: 10_000, count: 5))
        XCTAssertEqual(budgeted.map { $0.firstBytes.count }, [0, 4096, 4096, 0, 0])
        XCTAssertEqual(server.requests.withLock { $0.filter { $0.method == .head }.map(\.url) }.sorted(), ["http://h/0.nc", "http://h/3.nc", "http://h/4.nc"])
    }
}

/// The multi-range limit as a state machine, without requests.
final class MultiRangeLimitTests: XCTestCase {
    func testProbesDoubleTheLimitOneAtATime() {
        var limit = MultiRangeLimit()
        XCTAssertEqual(limit.plan(rangeCount: 16), .init(first: 16, perRequest: 16, firstIsProbe: false))
        XCTAssertEqual(limit.plan(rangeCount: 40), .init(first: 32, perRequest: 16, firstIsProbe: true))
        XCTAssertEqual(limit.plan(rangeCount: 40), .init(first: 16, perRequest: 16, firstIsProbe: false), "one probe at a time")
        limit.answered(32, probe: true)
        XCTAssertEqual(limit.perRequest, 32)
        XCTAssertEqual(limit.plan(rangeCount: 40), .init(first: 40, perRequest: 32, firstIsProbe: true), "a probe asks for no more than the batch")
        limit.answered(40, probe: true)
        XCTAssertEqual(limit.plan(rangeCount: 10), .init(first: 10, perRequest: 40, firstIsProbe: false))
        for expected in [80, 128] {
            let plan = limit.plan(rangeCount: 1_000)
            XCTAssertEqual(plan, .init(first: expected, perRequest: limit.perRequest, firstIsProbe: true))
            limit.answered(plan.first, probe: true)
        }
        XCTAssertEqual(limit.perRequest, MultiRangeLimit.ceiling)
        XCTAssertFalse(limit.plan(rangeCount: 1_000).firstIsProbe)
    }

    func testARefusedProbeKeepsTheLimitAndEndsProbing() {
        var limit = MultiRangeLimit()
        XCTAssertTrue(limit.plan(rangeCount: 40).firstIsProbe)
        limit.answered(16, probe: false)
        XCTAssertNil(limit.refused(32, wholeObject: true, probe: true), "16 were answered, so 16 stays")
        XCTAssertEqual(limit.perRequest, 16)
        XCTAssertFalse(limit.plan(rangeCount: 40).firstIsProbe)
        // An answer above a refused count does not raise the limit back to it.
        limit.answered(40, probe: false)
        XCTAssertEqual(limit.perRequest, 31)
    }

    func testRefusalsLowerTheLimitButNotBelowWhatWasAnswered() {
        var wholeObjects = MultiRangeLimit()
        XCTAssertEqual(wholeObjects.refused(10, wholeObject: true, probe: false), 5)
        XCTAssertEqual(wholeObjects.refused(5, wholeObject: true, probe: false), 2)
        XCTAssertEqual(wholeObjects.refused(2, wholeObject: true, probe: false), 1)
        XCTAssertEqual(wholeObjects.perRequest, 1)

        var answeredEight = MultiRangeLimit()
        answeredEight.answered(8, probe: false)
        XCTAssertEqual(answeredEight.refused(16, wholeObject: false, probe: false), 8, "a status refusal keeps what was answered")

        var neverAnswered = MultiRangeLimit()
        XCTAssertEqual(neverAnswered.refused(16, wholeObject: false, probe: false), 1, "nothing answered: one range per request")
    }

    func testAProbeRefusedBeforeAnyAnswerKeepsTheStartingLimit() {
        var limit = MultiRangeLimit()
        XCTAssertTrue(limit.plan(rangeCount: 40).firstIsProbe)
        XCTAssertNil(limit.refused(32, wholeObject: false, probe: true), "a 400 for the probe is not a 400 for 16 ranges")
        XCTAssertEqual(limit.plan(rangeCount: 40), .init(first: 16, perRequest: 16, firstIsProbe: false))
    }

    func testAnAbandonedProbeLetsTheNextOneGo() {
        var limit = MultiRangeLimit()
        XCTAssertTrue(limit.plan(rangeCount: 40).firstIsProbe)
        limit.abandoned(probe: true)
        XCTAssertTrue(limit.plan(rangeCount: 40).firstIsProbe)
    }
}

final class ObjectIdentityTests: XCTestCase {
    func testEachKindIsKeptAndCheckedItsOwnWay() {
        let identities: [ObjectIdentity] = [
            .etag("\"abc-1\""), .lastModified("Sun, 06 Nov 1994 08:49:37 GMT"),
            .file(device: 2049, inode: 77, size: 1000, modified: 1_700_000_000_123_456_789, changed: 1_700_000_001_000_000_000),
        ]
        for identity in identities {
            XCTAssertEqual(ObjectIdentity(encoded: identity.encoded), identity, identity.encoded)
        }
        // An ETag that looks like neither other spelling stays an ETag.
        XCTAssertEqual(ObjectIdentity(encoded: "file:not:a:stat"), .etag("file:not:a:stat"))
        XCTAssertEqual(RemoteStore.rangeHeaders([0..<8], identity: identities[0]).last?.0, "If-Match")
        XCTAssertEqual(RemoteStore.rangeHeaders([0..<8], identity: identities[1]).last?.0, "If-Unmodified-Since")
        XCTAssertEqual(RemoteStore.rangeHeaders([0..<8], identity: identities[1]).last?.1, "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(RemoteStore.rangeHeaders([0..<8], identity: nil).count, 1)
    }
}
