import ByteSource
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Which objects a kerchunk reference file may name. A reference file is data from elsewhere:
/// without this, one that names `/etc/shadow` or `http://127.0.0.1:8080/admin` would be read by
/// the daemon and served to every user of the mount. By default a reference file may name
/// objects at its own origin only (scheme, host and port; the bucket for S3) or, for a local
/// file, files under its own directory; `--allow-source PREFIX` adds more. Sources the user
/// typed (paths, globs, URLs) are not confined: the user named them.
public struct SourceConfinement: Sendable, Equatable {
    /// One place objects may come from.
    public enum Prefix: Sendable, Equatable, CustomStringConvertible {
        /// Local files under this directory (absolute, symbolic links resolved).
        case directory(String)
        /// Remote objects at this origin whose path is this prefix or below it.
        case remote(Origin, path: String)

        public var description: String {
            switch self {
            case .directory(let path): return path == "/" ? "/" : path + "/"
            case .remote(let origin, let path): return origin.description + path
            }
        }
    }

    /// Scheme, host and port of an HTTP(S) URL, or the bucket of an S3 URL.
    public struct Origin: Sendable, Hashable, CustomStringConvertible {
        public var scheme: String
        /// The host, lower-cased (IPv6 literals keep their brackets); the bucket for S3.
        public var host: String
        /// The port, with the scheme's default filled in (0 for S3).
        public var port: Int

        public var description: String {
            switch scheme {
            case "s3": return "s3://\(host)"
            case "http" where port == 80, "https" where port == 443: return "\(scheme)://\(host)"
            default: return "\(scheme)://\(host):\(port)"
            }
        }
    }

    public var allowed: [Prefix]

    public init(allowed: [Prefix]) {
        self.allowed = allowed
    }

    /// The default for a reference file at `location` (its origin, or its directory), plus
    /// each `--allow-source` prefix. Relative local paths are taken from `workingDirectory`.
    public init(referencesAt location: String, allowSources: [String], workingDirectory: String) throws(ConfinementError) {
        var allowed: [Prefix] = []
        switch try Self.place(of: location, workingDirectory: workingDirectory) {
        case .directory(let path):
            allowed.append(.directory(Self.parentDirectory(of: path)))
        case .remote(let origin, _):
            allowed.append(.remote(origin, path: "/"))
        }
        for source in allowSources {
            do {
                allowed.append(try Self.place(of: source, workingDirectory: workingDirectory))
            } catch {
                throw .invalidPrefix(source, error.reason)
            }
        }
        self.allowed = allowed
    }

    /// Nil when `url` is inside an allowed prefix; otherwise why not.
    public func refusal(of url: String, workingDirectory: String) -> String? {
        let place: Prefix
        do { place = try Self.place(of: url, workingDirectory: workingDirectory) } catch { return error.reason }
        for prefix in allowed where Self.contains(prefix, place) { return nil }
        return "it is outside the allowed sources (\(allowed.map(\.description).joined(separator: ", ")))"
    }

    /// Where `url` is to be read from when it is inside an allowed prefix: a local path as its
    /// canonical path (symbolic links resolved, so the file read is the file checked), a URL as
    /// it is; otherwise the reason it is refused.
    public func admitted(_ url: String, workingDirectory: String) -> Result<String, ConfinementError> {
        let place: Prefix
        do { place = try Self.place(of: url, workingDirectory: workingDirectory) } catch { return .failure(error) }
        guard allowed.contains(where: { Self.contains($0, place) }) else {
            return .failure(.refused(url, "it is outside the allowed sources (\(allowed.map(\.description).joined(separator: ", ")))"))
        }
        if case .directory(let path) = place { return .success(path) }
        return .success(url)
    }

    static func contains(_ prefix: Prefix, _ place: Prefix) -> Bool {
        switch (prefix, place) {
        case (.directory(let directory), .directory(let path)):
            return isPath(path, under: directory)
        case (.remote(let origin, let directory), .remote(let other, let path)):
            return origin == other && isPath(path, under: directory)
        default:
            return false
        }
    }

    /// Component-wise: `/data` holds `/data` and `/data/x`, not `/database`.
    static func isPath(_ path: String, under directory: String) -> Bool {
        if directory == "/" || path == directory { return true }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        return path.hasPrefix(base)
    }

    /// Where `text` (a URL or a path) points: a local path with `.`, `..` and symbolic links
    /// resolved as the kernel would, or an origin and a path without dot segments.
    static func place(of text: String, workingDirectory: String) throws(ConfinementError) -> Prefix {
        // Bytes, not a substring search: this runs for every object of a manifest as it mounts.
        if text.utf8.contains(0) { throw .refused(text, "it contains a NUL byte") }
        let location: Location
        do { location = try Location(parsing: text) } catch { throw .refused(text, "only s3://, http(s)://, file:// and paths are allowed") }
        switch location {
        case .local(let raw):
            guard !raw.isEmpty else { throw .refused(text, "an empty path") }
            let absolute = raw.hasPrefix("/") ? raw : workingDirectory + "/" + raw
            return .directory(resolvedPath(absolute))
        case .s3(let bucket, let key):
            let path = "/" + key
            if hasDotSegment(path) { throw .refused(text, "its key has . or .. segments") }
            return .remote(Origin(scheme: "s3", host: bucket, port: 0), path: path)
        case .http(let url):
            return try httpPlace(url)
        }
    }

    static func httpPlace(_ url: String) throws(ConfinementError) -> Prefix {
        let scheme = url.hasPrefix("https://") ? "https" : "http"
        let rest = url.dropFirst(scheme.count + 3)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = String(rest[authorityEnd...])
        if let cut = path.firstIndex(where: { $0 == "?" || $0 == "#" }) { path = String(path[..<cut]) }
        if path.isEmpty { path = "/" }
        guard !authority.contains("@") else { throw .refused(url, "URLs with user names or passwords are not allowed") }
        var host = Substring(authority)
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .refused(url, "an unterminated IPv6 address") }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw .refused(url, "an invalid host") }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .refused(url, "no host") }
        var port = scheme == "https" ? 443 : 80
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number), portText.allSatisfy(\.isASCII) else {
                throw .refused(url, "an invalid port")
            }
            port = number
        }
        if hasDotSegment(path) { throw .refused(url, "its path has . or .. segments") }
        return .remote(Origin(scheme: scheme, host: host.lowercased(), port: port), path: path)
    }

    /// Dot segments, also percent-encoded (`%2e%2E`), which HTTP clients and servers remove.
    static func hasDotSegment(_ path: String) -> Bool {
        path.split(separator: "/", omittingEmptySubsequences: false).contains { segment in
            let decoded = segment.replacingOccurrences(of: "%2e", with: ".", options: .caseInsensitive)
            return decoded == "." || decoded == ".."
        }
    }

    /// The canonical path of an existing file or directory (`realpath`); for one that does not
    /// exist, its longest existing ancestor's canonical path with the rest added lexically.
    static func resolvedPath(_ absolute: String) -> String {
        if let real = realPath(absolute) { return real }
        var components = Location.lexicallyNormalised(absolute).split(separator: "/").map(String.init)
        var rest: [String] = []
        while !components.isEmpty {
            rest.insert(components.removeLast(), at: 0)
            if let real = realPath("/" + components.joined(separator: "/")) {
                return (real == "/" ? "" : real) + "/" + rest.joined(separator: "/")
            }
        }
        return Location.lexicallyNormalised(absolute)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}

public enum ConfinementError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An object or location that cannot be allowed, and why.
    case refused(String, String)
    /// An `--allow-source` prefix that is not a path or URL.
    case invalidPrefix(String, String)

    public var reason: String {
        switch self {
        case .refused(_, let reason), .invalidPrefix(_, let reason): return reason
        }
    }

    public var description: String {
        switch self {
        case .refused(let location, let reason): return "\(location): \(reason)"
        case .invalidPrefix(let prefix, let reason): return "--allow-source \(prefix): \(reason)"
        }
    }
}
