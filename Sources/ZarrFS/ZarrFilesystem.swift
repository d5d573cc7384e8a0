import Foundation
import Logging
import VirtualZarr

/// Why a chunk could not be fetched, in the terms a filesystem answers with. Fetchers (the
/// object store's adapter, test fakes) throw it; the filesystem knows no transport.
public struct ChunkFetchError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The object changed or disappeared since the scan.
        case changed
        /// The fetch took longer than the mount's read timeout.
        case timedOut
        case failed
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// What an operation of the filesystem fails with; `errno` is the one place these become the
/// numbers the kernel sees.
public enum FilesystemError: Error, Equatable, Sendable {
    case noEntry
    case notADirectory
    case isADirectory
    case readOnly
    case noAttribute
    /// The caller's buffer is too small for the attribute.
    case range
    /// The archive changed since the scan: the mount's view is out of date.
    case stale
    case timedOut
    case io

    public var errno: Int32 {
        switch self {
        case .noEntry: ENOENT
        case .notADirectory: ENOTDIR
        case .isADirectory: EISDIR
        case .readOnly: EROFS
        case .noAttribute: ENODATA
        case .range: ERANGE
        case .stale: ESTALE
        case .timedOut: ETIMEDOUT
        case .io: EIO
        }
    }

    /// How a failed chunk read is answered.
    public init(reading error: any Error) {
        if let fetch = error as? ChunkFetchError {
            switch fetch.kind {
            case .changed: self = .stale
            case .timedOut: self = .timedOut
            case .failed: self = .io
            }
        } else {
            self = .io
        }
    }
}

/// The mounted filesystem's operations without FUSE: each returns its answer or a
/// `FilesystemError`. The libfuse3 adapter (`FuseMount`) only translates; this core is what
/// the reference-model tests drive.
public final class ZarrFilesystem: Sendable {
    public struct Attributes: Sendable, Equatable {
        public var inode: UInt64
        public var isDirectory: Bool
        public var size: UInt64
        /// Seconds since the epoch.
        public var modified: Int
        /// Permission bits, or nil for the mount's defaults; with the owner and group.
        public var mode: Int32?
        public var uid: UInt32
        public var gid: UInt32
    }

    public struct DirectoryEntry: Sendable, Equatable {
        public var name: String
        public var attributes: Attributes
        /// The offset that resumes the listing after this entry.
        public var next: Int
    }

    public static let statusAttribute = "user.zarrmount.status"

    public let tree: ZarrTree
    public let reader: ChunkReader
    let logger: Logger
    /// Describes the mount for `zarrmount status` (the root's status attribute).
    let status: @Sendable () -> [UInt8]
    /// Per object: its last modification (chunk files' `st_mtime`); metadata files and
    /// directories take the newest.
    private let objectTimes: [Int]
    private let objectAccess: [FileAccess?]
    /// Per regridded array: the access its assembled chunk files carry under `--allow-other`
    /// when every file it is made of has the same; others are the mount owner's alone.
    private let assembledAccess: [Int: FileAccess]
    private let newest: Int
    /// Under `--allow-other`, a chunk file of a local object carries that file's owner and
    /// read bits, so `default_permissions` lets through the users who could read the original
    /// and no one else.
    private let sourceAccess: Bool
    /// What `statfs` reports: the archive's size and every inode the tree can hand out.
    public let archiveBytes: UInt64
    public let inodeCount: UInt64

    public init(
        tree: ZarrTree, reader: ChunkReader, logger: Logger, sourceAccess: Bool = false,
        status: @escaping @Sendable () -> [UInt8] = { [] }
    ) {
        self.tree = tree
        self.reader = reader
        self.logger = logger
        self.status = status
        self.sourceAccess = sourceAccess
        let now = Int(Date().timeIntervalSince1970)
        let objects = tree.store.dataset.objects
        objectTimes = objects.map { $0.lastModified.map(Int.init) ?? now }
        let objectAccess = objects.map(\.access)
        self.objectAccess = objectAccess
        var assembledAccess: [Int: FileAccess] = [:]
        // Only `--allow-other` needs it, and it walks every source chunk of the regridded arrays.
        for (index, array) in tree.store.dataset.arrays.enumerated() where sourceAccess {
            guard let regridding = array.regridding else { continue }
            let accesses = regridding.objects.map { Int($0) < objectAccess.count ? objectAccess[Int($0)] : nil }
            if let first = accesses.first, let access = first, accesses.allSatisfy({ $0 == access }) { assembledAccess[index] = access }
        }
        self.assembledAccess = assembledAccess
        newest = objectTimes.max() ?? now
        archiveBytes = objects.reduce(0) { $0 + $1.size }
        inodeCount = tree.inodeCount
    }

    // MARK: Attributes

    public func attributes(_ entry: ZarrTree.Entry) -> Attributes {
        var attributes = Attributes(
            inode: entry.inode, isDirectory: entry.content == .directory, size: entry.size,
            modified: newest, mode: nil, uid: 0, gid: 0)
        switch entry.content {
        case .chunk(let object, _, _, _):
            if Int(object) < objectTimes.count { attributes.modified = objectTimes[Int(object)] }
            if sourceAccess, Int(object) < objectAccess.count, let access = objectAccess[Int(object)] {
                attributes.mode = Int32(access.mode & 0o444)
                attributes.uid = access.uid
                attributes.gid = access.gid
            }
        case .assembled(let array, _, _):
            guard sourceAccess else { break }
            // Made of several files' chunks: readable as all of them are, or by the owner alone.
            if let access = assembledAccess[array] {
                attributes.mode = Int32(access.mode & 0o444)
                attributes.uid = access.uid
                attributes.gid = access.gid
            } else {
                attributes.mode = 0o400
                attributes.uid = getuid()
                attributes.gid = getgid()
            }
        case .directory, .bytes:
            break
        }
        return attributes
    }

    // MARK: Operations

    public func lookup(parent: UInt64, name: String) -> Result<Attributes, FilesystemError> {
        guard let entry = tree.lookup(parent, name) else { return .failure(.noEntry) }
        return .success(attributes(entry))
    }

    public func getattr(_ inode: UInt64) -> Result<Attributes, FilesystemError> {
        guard let entry = tree.entry(inode) else { return .failure(.noEntry) }
        return .success(attributes(entry))
    }

    public func opendir(_ inode: UInt64) -> Result<Void, FilesystemError> {
        guard let directory = tree.entry(inode) else { return .failure(.noEntry) }
        guard directory.content == .directory else { return .failure(.notADirectory) }
        return .success(())
    }

    /// Up to `limit` entries from `offset`: "." and ".." at positions 0 and 1, then the tree's;
    /// each entry's `next` resumes after it.
    public func readdir(_ inode: UInt64, offset: Int, limit: Int) -> Result<[DirectoryEntry], FilesystemError> {
        guard let directory = tree.entry(inode) else { return .failure(.noEntry) }
        guard directory.content == .directory else { return .failure(.notADirectory) }
        var result: [DirectoryEntry] = []
        var position = max(0, offset)
        if position < 2 {
            let parent = tree.parent(inode).flatMap(tree.entry) ?? directory
            for (index, (name, entry)) in [(".", directory), ("..", parent)].enumerated() where index >= position && result.count < limit {
                result.append(DirectoryEntry(name: name, attributes: attributes(entry), next: index + 1))
            }
            position = 2
        }
        guard result.count < limit else { return .success(result) }
        for (next, entry) in tree.list(inode, from: position - 2, limit: limit - result.count) {
            result.append(DirectoryEntry(name: entry.name, attributes: attributes(entry), next: next + 2))
        }
        return .success(result)
    }

    public func open(_ inode: UInt64, writable: Bool) -> Result<Void, FilesystemError> {
        if writable { return .failure(.readOnly) }
        guard let file = tree.entry(inode) else { return .failure(.noEntry) }
        guard file.content != .directory else { return .failure(.isADirectory) }
        return .success(())
    }

    /// The bytes a read gets when memory answers right now (metadata, inline and cached
    /// chunks), or nil: then `read` fetches.
    public func cachedRead(_ inode: UInt64, offset: UInt64, size: Int) -> Result<ArraySlice<UInt8>, FilesystemError>? {
        guard let entry = tree.entry(inode) else { return .failure(.noEntry) }
        return reader.cachedRead(entry, offset: offset, size: size).map { .success($0) }
    }

    public func read(_ inode: UInt64, offset: UInt64, size: Int) async -> Result<ArraySlice<UInt8>, FilesystemError> {
        guard let entry = tree.entry(inode) else { return .failure(.noEntry) }
        do {
            return .success(try await reader.read(entry, offset: offset, size: size))
        } catch {
            let answer = FilesystemError(reading: error)
            let file = tree.path(inode) ?? "inode \(inode)"
            if answer == .stale {
                logger.error(
                    "the archive changed since the scan: unmount and mount again to see it as it is now",
                    metadata: ["file": "\(file)", "error": "\(error)"])
            } else {
                logger.error("read failed", metadata: ["file": "\(file)", "error": "\(error)"])
            }
            return .failure(answer)
        }
    }

    /// The attribute's value; with `size` 0, only its length is asked for (the bytes are
    /// returned all the same, and the adapter replies with their count).
    public func getxattr(_ inode: UInt64, name: String, size: Int) -> Result<[UInt8], FilesystemError> {
        guard inode == ZarrTree.rootInode, name == Self.statusAttribute else { return .failure(.noAttribute) }
        let value = status()
        guard size == 0 || size >= value.count else { return .failure(.range) }
        return .success(value)
    }

    /// The attribute names, NUL-terminated.
    public func listxattr(_ inode: UInt64, size: Int) -> Result<[UInt8], FilesystemError> {
        let names: [UInt8] = inode == ZarrTree.rootInode ? Array(Self.statusAttribute.utf8) + [0] : []
        guard size == 0 || size >= names.count else { return .failure(.range) }
        return .success(names)
    }

    public func statfs() -> (bytes: UInt64, inodes: UInt64) {
        (archiveBytes, inodeCount)
    }
}
