/// One HTTP exchange as the object store sees it: no streaming, bodies bounded.
public struct HTTPRequest: Sendable {
    public enum Method: String, Sendable { case get = "GET", head = "HEAD" }

    public var method: Method
    public var url: String
    public var headers: [(String, String)]
    /// Responses larger than this are cut off and reported as an error.
    public var maxBodyBytes: Int

    public init(method: Method = .get, url: String, headers: [(String, String)] = [], maxBodyBytes: Int = 256 << 20) {
        self.method = method
        self.url = url
        self.headers = headers
        self.maxBodyBytes = maxBodyBytes
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.last { asciiCaseInsensitiveEqual($0.0, name) }?.1
    }

    public var contentLength: Int? { header("content-length").flatMap { Int($0) } }

    /// `Content-Range: bytes a-b/total` → (a, b, total).
    public var contentRange: (first: UInt64, last: UInt64, total: UInt64?)? {
        header("content-range").flatMap { MultipartByteRanges.byteRange(Array($0.utf8)[...]) }
    }
}

/// Header names compared without allocating lowercased copies (this runs for every header
/// lookup of every response).
func asciiCaseInsensitiveEqual(_ a: String, _ b: String) -> Bool {
    asciiCaseInsensitiveEqual(a.utf8, b)
}

func asciiCaseInsensitiveEqual(_ a: some Sequence<UInt8>, _ b: String) -> Bool {
    var left = a.makeIterator()
    var right = b.utf8.makeIterator()
    while true {
        switch (left.next(), right.next()) {
        case (nil, nil): return true
        case (let x?, let y?):
            let lower = { (c: UInt8) -> UInt8 in c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
            if lower(x) != lower(y) { return false }
        default: return false
        }
    }
}

/// How a transfer ended below HTTP: the transport's failure, with libcurl's code and text.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var code: Int
    public var message: String
    public var url: String

    public var description: String { "\(url): \(message) (libcurl error \(code))" }

    /// libcurl's CURLE_WRITE_ERROR: the engine stopped a body larger than the request allowed.
    public static let bodyLimitCode = 23
    public var exceededBodyLimit: Bool { code == Self.bodyLimitCode }

    /// Connection failures and timeouts may clear up; malformed URLs and the like do not.
    public var isRetryable: Bool {
        // CURLE_COULDNT_RESOLVE_PROXY 5, COULDNT_RESOLVE_HOST 6, COULDNT_CONNECT 7, PARTIAL_FILE 18,
        // OPERATION_TIMEDOUT 28, GOT_NOTHING 52, SEND_ERROR 55, RECV_ERROR 56, HTTP2 16, HTTP2_STREAM 92
        [5, 6, 7, 16, 18, 28, 52, 55, 56, 92].contains(code)
    }
}

import Foundation

/// Anything that performs HTTP requests: the libcurl engine, or a test double.
public protocol HTTPTransport: Sendable {
    func perform(_ request: HTTPRequest) async throws -> HTTPResponse
}
