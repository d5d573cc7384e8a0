/// Where objects live: `s3://bucket/key`, `http(s)://host/path`, `file:///path` or a plain path.
public enum Location: Sendable, Equatable {
    case s3(bucket: String, key: String)
    case http(url: String)
    case local(path: String)

    public init(parsing text: String) throws {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst(5)
            guard let slash = rest.firstIndex(of: "/") else {
                let bucket = String(rest)
                guard !bucket.isEmpty else { throw ObjectStoreError(.invalidLocation("no bucket name"), url: text) }
                self = .s3(bucket: bucket, key: "")
                return
            }
            let bucket = String(rest[..<slash])
            guard !bucket.isEmpty else { throw ObjectStoreError(.invalidLocation("no bucket name"), url: text) }
            self = .s3(bucket: bucket, key: String(rest[rest.index(after: slash)...]))
        } else if text.hasPrefix("http://") || text.hasPrefix("https://") {
            self = .http(url: text)
        } else if text.hasPrefix("file://") {
            self = .local(path: String(text.dropFirst(7)))
        } else if text.contains("://") {
            throw ObjectStoreError(.invalidLocation("unsupported scheme (use s3://, http(s)://, file:// or a path)"), url: text)
        } else {
            self = .local(path: text)
        }
    }

    public var isRemote: Bool {
        if case .local = self { return false }
        return true
    }
}

/// RFC 3986 percent-encoding as AWS SigV4 wants it: unreserved characters kept, `/` kept
/// only when `keepSlash`.
func uriEncode(_ text: String, keepSlash: Bool) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        case UInt8(ascii: "/") where keepSlash:
            out.append("/")
        default:
            out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return out
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
