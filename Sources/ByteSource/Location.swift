/// Where objects live: `s3://bucket/key`, `http(s)://host/path`, `file:///path` or a plain path.
/// Parsed once where an object is first named (`ObjectInfo` keeps it), not on every read.
public enum Location: Sendable, Equatable, Hashable {
    case s3(bucket: String, key: String)
    case http(url: String)
    case local(path: String)

    /// An absolute path with `.` and `..` resolved by their names alone (`/data/a/../b` is
    /// `/data/b`), not by following links.
    public static func lexicallyNormalised(_ path: String) -> String {
        var out: [Substring] = []
        for component in path.split(separator: "/") {
            switch component {
            case ".": continue
            case "..": if !out.isEmpty { out.removeLast() }
            default: out.append(component)
            }
        }
        return "/" + out.joined(separator: "/")
    }

    /// Why a text names no location.
    public struct Problem: Error, Sendable, Equatable {
        public var reason: String
    }

    public init(_ text: String) throws(Problem) {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst(5)
            let slash = rest.firstIndex(of: "/")
            let bucket = String(rest[..<(slash ?? rest.endIndex)])
            guard !bucket.isEmpty else { throw Problem(reason: "no bucket name") }
            self = .s3(bucket: bucket, key: slash.map { String(rest[rest.index(after: $0)...]) } ?? "")
        } else if text.hasPrefix("http://") || text.hasPrefix("https://") {
            self = .http(url: text)
        } else if text.hasPrefix("file://") {
            self = .local(path: String(text.dropFirst(7)))
        } else if Self.hasSchemeSeparator(text) {
            throw Problem(reason: "unsupported scheme (use s3://, http(s)://, file:// or a path)")
        } else {
            self = .local(path: text)
        }
    }

    /// Whether `text` holds "://", compared as bytes: a manifest's every object is parsed when
    /// it mounts, and a generic substring search costs more than the rest of the parse.
    static func hasSchemeSeparator(_ text: String) -> Bool {
        var matched = 0
        for byte in text.utf8 {
            switch (matched, byte) {
            case (0, UInt8(ascii: ":")), (1, UInt8(ascii: "/")): matched += 1
            case (2, UInt8(ascii: "/")): return true
            case (_, UInt8(ascii: ":")): matched = 1
            default: matched = 0
            }
        }
        return false
    }

    public var isRemote: Bool {
        if case .local = self { return false }
        return true
    }
}
