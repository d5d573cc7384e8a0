import ByteSource
import Foundation

/// An object found by listing: where it is, how big, and its identity for change detection.
public struct ListedObject: Sendable, Equatable {
    public var url: String
    public var size: UInt64
    /// ETag for remote objects; `size-mtime` for local files.
    public var identity: ObjectIdentity?
    /// Last modification, in seconds since 1970 (shown as the chunk files' `st_mtime`).
    public var lastModified: Int64?
    /// The object's first bytes, when the listing fetched them along with its size and identity
    /// (HTTP URLs, see `HTTPDescription`); empty otherwise.
    public var firstBytes: [UInt8] = []
    /// A local file's owner, group and permission bits (nil for remote objects).
    public var owner: UInt32?
    public var group: UInt32?
    public var permissions: UInt32?

    public init(url: String, size: UInt64, identity: ObjectIdentity?, lastModified: Int64? = nil) {
        self.url = url
        self.size = size
        self.identity = identity
        self.lastModified = lastModified
    }
}

/// Why local sources could not be listed, naming the pattern as the user gave it.
public enum ListingError: Error, CustomStringConvertible, Sendable, Equatable {
    case unlistableDirectory(pattern: String, directory: String)
    case noMatch(pattern: String)
    case noSuchFile(path: String)
    /// A directory named where files are expected: zarrmount does not guess which of its files
    /// (top level or every level, `.nc` or all) are the archive.
    case directory(path: String)
    /// A source that is both a file's name (`x[1].nc`) and a pattern matching other files
    /// (`x1.nc`): either reading could be the one meant.
    case literalOrPattern(pattern: String, others: [String])

    public var description: String {
        switch self {
        case .unlistableDirectory(let pattern, let directory): return "\(pattern): directory \(directory) cannot be listed"
        case .noMatch(let pattern): return "\(pattern): no files match this pattern"
        case .literalOrPattern(let pattern, let others):
            return GlobPattern.literalOrPatternMessage(pattern: pattern, others: others)
        case .noSuchFile(let path): return "\(path): no such file (or it is not a regular file)"
        case .directory(let path):
            let base = path.hasSuffix("/") ? String(path.dropLast()) : path
            return
                "\(path) is a directory: name its files with a glob in quotes, '\(base)/*.nc' for the files at its top, or '\(base)/**/*.nc' for those in its subdirectories too"
        }
    }
}

/// Local paths and globs (`file://` URLs or plain paths).
public enum LocalStore {
    /// Expands each path or glob to the files it names, sorted, without duplicates. A plain path
    /// that does not exist and a glob that matches nothing are errors naming the pattern.
    public static func list(_ patterns: [String]) throws -> [ListedObject] {
        var seen: Set<String> = []
        var result: [ListedObject] = []
        for raw in patterns {
            let pattern = raw.hasPrefix("file://") ? String(raw.dropFirst(7)) : raw
            let absolute = pattern.hasPrefix("/") ? pattern : FileManager.default.currentDirectoryPath + "/" + pattern
            var found: [String] = []
            if GlobPattern.hasWildcards(absolute) {
                let glob = GlobPattern(absolute, hidesDotNames: true)
                var root = glob.literalPrefix
                if root.hasSuffix("/") && root.count > 1 { root.removeLast() }
                if root.isEmpty { root = "/" }
                guard let enumerator = FileManager.default.enumerator(atPath: root) else {
                    throw ListingError.unlistableDirectory(pattern: raw, directory: root)
                }
                while let relative = enumerator.nextObject() as? String {
                    let path = root == "/" ? "/" + relative : root + "/" + relative
                    if glob.matches(path), isRegularFile(path) { found.append(path) }
                }
                if isRegularFile(absolute) {
                    // `x[1].nc` names a file; as a pattern it would name `x1.nc` instead.
                    let others = found.filter { $0 != absolute }.sorted()
                    guard others.isEmpty else { throw ListingError.literalOrPattern(pattern: raw, others: others) }
                    found = [absolute]
                }
                if found.isEmpty { throw ListingError.noMatch(pattern: raw) }
            } else {
                guard isRegularFile(absolute) else {
                    var isDirectory: ObjCBool = false
                    if FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue {
                        throw ListingError.directory(path: raw)
                    }
                    throw ListingError.noSuchFile(path: raw)
                }
                found = [absolute]
            }
            for path in found.sorted() where seen.insert(path).inserted {
                result.append(try describe(path))
            }
        }
        return result
    }

    /// Size, identity and modification time of a local file. The identity is device, inode,
    /// size, and mtime and ctime in nanoseconds: a file rewritten in place keeps its inode and
    /// may get its size and mtime back (`touch -d`), but not its ctime, which only the kernel sets.
    public static func describe(_ path: String) throws -> ListedObject {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw ObjectStoreError(.notFound, url: path) }
            throw ObjectStoreError(.transport("cannot stat: \(String(cString: strerror(code)))"), url: path)
        }
        var object = ListedObject(url: path, size: UInt64(info.st_size), identity: identity(of: info), lastModified: Int64(info.st_mtim.tv_sec))
        object.owner = info.st_uid
        object.group = info.st_gid
        object.permissions = info.st_mode & 0o7777
        return object
    }

    /// The identity of a file's `stat`; see `describe`.
    static func identity(of info: stat) -> ObjectIdentity {
        let mtime = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        let ctime = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        return .file(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size), modified: mtime, changed: ctime)
    }

    static func isRegularFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }
}
