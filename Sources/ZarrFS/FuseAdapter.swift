import CFuse
import Foundation
import Logging
import Synchronization
import ObjectStore
import VirtualZarr
#if canImport(Glibc)
import Glibc
#endif

/// The thin libfuse3 low-level adapter: each callback looks the request up in the `ZarrTree`
/// and replies, or hands a read to Swift concurrency and returns; the reply is sent from
/// whichever thread finishes. Mounted read-only with `default_permissions`.
public final class FuseMount: Sendable {
    public let tree: ZarrTree
    public let reader: ChunkReader
    let logger: Logger
    let timeout: Double = 3600

    /// Describes the mount for `zarrmount status` (the root's `user.zarrmount.status` xattr).
    let status: @Sendable () -> [UInt8]
    public static let statusAttribute = "user.zarrmount.status"

    /// Largest read the kernel may send, and its readahead (the 1 MiB).
    static let maxRead: UInt32 = 1 << 20
    /// Per object: its last modification (chunk files' `st_mtime`); metadata files and
    /// directories take the newest.
    private let objectTimes: [Int]
    private let objectAccess: [FileAccess?]
    /// Per regridded array: the access its assembled chunk files carry under `--allow-other`
    /// when every file it is made of has the same; others are the mount owner's alone.
    private let assembledAccess: [Int: (Int32, UInt32, UInt32)]
    private let newest: Int
    /// What `statfs` reports: the archive's size and every inode the tree can hand out.
    private let archiveBytes: UInt64
    private let inodeCount: UInt64
    /// Reads handed to Swift tasks and not yet replied to; the session outlives them.
    private let pendingReplies = Mutex(0)

    public init(tree: ZarrTree, reader: ChunkReader, logger: Logger, status: @escaping @Sendable () -> [UInt8] = { [] }) {
        self.tree = tree
        self.reader = reader
        self.logger = logger
        self.status = status
        let now = Int(Date().timeIntervalSince1970)
        objectTimes = tree.store.dataset.objects.map { $0.lastModified.map(Int.init) ?? now }
        let objectAccess = tree.store.dataset.objects.map(\.access)
        self.objectAccess = objectAccess
        var assembledAccess: [Int: (Int32, UInt32, UInt32)] = [:]
        for (index, array) in tree.store.dataset.arrays.enumerated() {
            guard let regridding = array.regridding else { continue }
            let accesses = regridding.objects.map { Int($0) < objectAccess.count ? objectAccess[Int($0)] : nil }
            if let first = accesses.first, let access = first, accesses.allSatisfy({ $0 == access }) {
                assembledAccess[index] = (Int32(access.mode & 0o444), access.uid, access.gid)
            }
        }
        self.assembledAccess = assembledAccess
        newest = objectTimes.max() ?? now
        archiveBytes = tree.store.dataset.objects.reduce(0) { $0 + $1.size }
        inodeCount = tree.inodeCount
    }

    public struct MountError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Under `--allow-other`, a chunk file of a local object carries that file's owner and
    /// read bits, so `default_permissions` lets through the users who could read the original
    /// and no one else; set by `run`.
    private let sourceAccess = Mutex(false)

    /// (permission bits or -1 for the defaults, uid, gid) of `entry`'s attributes.
    func access(_ entry: ZarrTree.Entry) -> (Int32, UInt32, UInt32) {
        guard sourceAccess.withLock({ $0 }) else { return (-1, 0, 0) }
        if case .assembled(let array, _, _) = entry.content {
            // Made of several files' chunks: readable as all of them are, or by the owner alone.
            return assembledAccess[array] ?? (0o400, getuid(), getgid())
        }
        guard case .chunk(let object, _, _, _) = entry.content, Int(object) < objectAccess.count,
              let access = objectAccess[Int(object)] else { return (-1, 0, 0) }
        return (Int32(access.mode & 0o444), access.uid, access.gid)
    }

    func modificationTime(_ entry: ZarrTree.Entry) -> Int {
        if case .chunk(let object, _, _, _) = entry.content, Int(object) < objectTimes.count { return objectTimes[Int(object)] }
        return newest
    }

    /// Mounts at `mountpoint` and serves requests until unmounted or signalled (SIGINT, SIGTERM,
    /// SIGHUP end the loop; reads in flight are answered before the session goes away); `ready`
    /// runs once the kernel mount exists.
    public func run(at mountpoint: String, allowOther: Bool, ready: () -> Void) throws {
        sourceAccess.withLock { $0 = allowOther }
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let connection else { return }
            cfuse_configure_connection(connection, FuseMount.maxRead)
        }
        ops.lookup = { req, parent, name in
            guard let req, let name else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.lookup(UInt64(parent), String(cString: name)) else { _ = fuse_reply_err(req, ENOENT); return }
            let (mode, uid, gid) = mount.access(entry)
            _ = cfuse_reply_entry(req, fuse_ino_t(entry.inode), entry.content == .directory ? 1 : 0, entry.size, mount.modificationTime(entry), mount.timeout,
                                  mode, uid, gid)
        }
        // Inodes are permanent (derived from the manifest), so lookup counts need no bookkeeping.
        ops.forget = { req, _, _ in
            guard let req else { return }
            fuse_reply_none(req)
        }
        ops.getattr = { req, inode, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            let (mode, uid, gid) = mount.access(entry)
            _ = cfuse_reply_attr(req, inode, entry.content == .directory ? 1 : 0, entry.size, mount.modificationTime(entry), mount.timeout,
                                 mode, uid, gid)
        }
        ops.opendir = { req, inode, info in
            guard let req, let info else { return }
            let mount = FuseMount.from(req)
            guard let directory = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            guard directory.content == .directory else { _ = fuse_reply_err(req, ENOTDIR); return }
            _ = fuse_reply_open(req, info)
        }
        ops.readdir = { req, inode, size, offset, _ in
            guard let req else { return }
            FuseMount.from(req).listDirectory(req, inode: inode, size: size, offset: offset, plus: false)
        }
        ops.readdirplus = { req, inode, size, offset, _ in
            guard let req else { return }
            FuseMount.from(req).listDirectory(req, inode: inode, size: size, offset: offset, plus: true)
        }
        ops.releasedir = { req, _, _ in
            guard let req else { return }
            _ = fuse_reply_err(req, 0)
        }
        ops.open = { req, inode, info in
            guard let req, let info else { return }
            if cfuse_open_flags_writable(info) != 0 { _ = fuse_reply_err(req, EROFS); return }
            let mount = FuseMount.from(req)
            guard let file = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            guard file.content != .directory else { _ = fuse_reply_err(req, EISDIR); return }
            cfuse_set_keep_cache(info)
            _ = fuse_reply_open(req, info)
        }
        ops.release = { req, _, _ in
            guard let req else { return }
            _ = fuse_reply_err(req, 0)
        }
        ops.read = { req, inode, size, offset, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            if let bytes = mount.reader.cachedRead(entry, offset: UInt64(offset), size: size) {
                _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count) }
                return
            }
            let request = RequestHandle(req)
            mount.pendingReplies.withLock { $0 += 1 }
            Task {
                defer { mount.pendingReplies.withLock { $0 -= 1 } }
                do {
                    let bytes = try await mount.reader.read(entry, offset: UInt64(offset), size: size)
                    _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(request.req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count) }
                } catch let error as ObjectStoreError where error.kind == .notFound || error.kind == .changed {
                    mount.logger.error("the archive changed since the scan: unmount and mount again to see it as it is now",
                                       metadata: ["file": "\(mount.tree.path(UInt64(inode)) ?? "inode \(inode)")", "error": "\(error)"])
                    _ = fuse_reply_err(request.req, ChunkErrno.code(for: error))
                } catch {
                    mount.logger.error("read failed", metadata: ["file": "\(mount.tree.path(UInt64(inode)) ?? "inode \(inode)")", "error": "\(error)"])
                    _ = fuse_reply_err(request.req, ChunkErrno.code(for: error))
                }
            }
        }
        ops.statfs = { req, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            _ = cfuse_reply_statfs(req, mount.archiveBytes, mount.inodeCount)
        }
        ops.getxattr = { req, inode, name, size in
            guard let req, let name else { return }
            let mount = FuseMount.from(req)
            guard inode == fuse_ino_t(ZarrTree.rootInode), String(cString: name) == FuseMount.statusAttribute else {
                _ = fuse_reply_err(req, ENODATA)
                return
            }
            let value = mount.status()
            if size == 0 { _ = fuse_reply_xattr(req, value.count); return }
            guard size >= value.count else { _ = fuse_reply_err(req, ERANGE); return }
            _ = value.withUnsafeBufferPointer { fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), value.count) }
        }
        ops.listxattr = { req, inode, size in
            guard let req else { return }
            let names: [UInt8] = inode == fuse_ino_t(ZarrTree.rootInode) ? Array(FuseMount.statusAttribute.utf8) + [0] : []
            if size == 0 { _ = fuse_reply_xattr(req, names.count); return }
            guard size >= names.count else { _ = fuse_reply_err(req, ERANGE); return }
            _ = names.withUnsafeBufferPointer { fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), names.count) }
        }
        let options = "ro,default_permissions,fsname=zarrmount,subtype=zarrmount,max_read=\(Self.maxRead)" + (allowOther ? ",allow_other" : "")
        let arguments = ["zarrmount", "-o", options]
        var cArguments = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        guard let created = cArguments.withUnsafeMutableBufferPointer({ pointer in
            cfuse_session_new(Int32(pointer.count), pointer.baseAddress, &ops, userdata)
        }) else { throw MountError(description: "libfuse could not create a session") }
        guard cfuse_install_exit_handlers(created) == 0 else {
            fuse_session_destroy(created)
            throw MountError(description: "cannot install signal handlers")
        }
        defer { cfuse_remove_exit_handlers() }
        guard fuse_session_mount(created, mountpoint) == 0 else {
            fuse_session_destroy(created)
            throw MountError(description: "\(mountpoint): mount failed (is it an empty directory, is /dev/fuse available, is a stale mount there? try `zarrmount unmount \(mountpoint)`)")
        }
        ready()
        _ = fuse_session_loop(created)
        // Reads handed to tasks are answered before the unmount: unmounting closes the
        // connection, and the kernel would fail them. If one hangs past the deadline, the
        // session is kept alive (not destroyed) so its late reply cannot touch freed memory.
        let drained = drainPendingReplies(deadline: .now + .seconds(30))
        fuse_session_unmount(created)
        if drained {
            fuse_session_destroy(created)
        } else {
            logger.warning("unmounted with reads still in flight after 30 s; exiting without waiting for them")
        }
    }

    /// Waits until every read handed to a task has replied, or the deadline passes.
    private func drainPendingReplies(deadline: ContinuousClock.Instant) -> Bool {
        while pendingReplies.withLock({ $0 }) > 0 {
            if ContinuousClock.now >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// One page of a directory listing ("." and ".." first, then the tree's entries); with
    /// `plus`, each entry carries its attributes so `ls -l` needs no lookups.
    private func listDirectory(_ req: fuse_req_t, inode: fuse_ino_t, size: Int, offset: off_t, plus: Bool) {
        guard let directory = tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
        guard directory.content == .directory else { _ = fuse_reply_err(req, ENOTDIR); return }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        func add(_ name: String, _ entry: ZarrTree.Entry, next: Int) -> Bool {
            let isDirectory: Int32 = entry.content == .directory ? 1 : 0
            let need = buffer.withUnsafeMutableBufferPointer { pointer in
                plus
                    ? cfuse_add_direntry_plus(req, pointer.baseAddress! + used, size - used, name, fuse_ino_t(entry.inode), isDirectory,
                                              entry.size, modificationTime(entry), timeout, off_t(next), access(entry).0, access(entry).1, access(entry).2)
                    : cfuse_add_direntry(req, pointer.baseAddress! + used, size - used, name, fuse_ino_t(entry.inode), isDirectory, off_t(next))
            }
            guard used + need <= size else { return false }
            used += need
            return true
        }
        // Positions 1 and 2 are "." and ".."; the tree's positions follow.
        var position = Int(offset)
        var full = false
        if position < 2 {
            let parentInode = tree.parent(UInt64(inode)) ?? UInt64(inode)
            for (index, name) in [".", ".."].enumerated() where index >= position {
                let target = index == 0 ? directory : (tree.entry(parentInode) ?? directory)
                guard add(name, target, next: index + 1) else { full = true; break }
                position = index + 1
            }
        }
        if !full {
            for (next, entry) in tree.list(UInt64(inode), from: max(0, position - 2), limit: max(1, size / 32)) {
                guard add(entry.name, entry, next: next + 2) else { break }
            }
        }
        _ = buffer.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
    }

    /// The status document of the mount at `mountpoint`, or nil when it is not a zarrmount mount.
    public static func readStatus(_ mountpoint: String) -> String? {
        if case .serving(let status) = probe(mountpoint) { return status }
        return nil
    }

    public enum Probe: Sendable, Equatable {
        /// A live zarrmount mount, with its status document.
        case serving(String)
        /// A FUSE mount whose daemon is gone ("Transport endpoint is not connected").
        case stale
        /// Anything else: a plain directory, another filesystem, a missing path.
        case other
    }

    /// What is at `mountpoint`. Asks the root for its status attribute, which reaches the daemon
    /// (a `stat` may be answered from the kernel's attribute cache even after the daemon died).
    public static func probe(_ mountpoint: String) -> Probe {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = cfuse_getxattr(mountpoint, statusAttribute, &buffer, buffer.count)
        if count >= 0 { return .serving(String(decoding: buffer.prefix(count), as: UTF8.self)) }
        return errno == ENOTCONN ? .stale : .other
    }

    static func from(_ req: fuse_req_t) -> FuseMount {
        Unmanaged<FuseMount>.fromOpaque(fuse_req_userdata(req)!).takeUnretainedValue()
    }
}

/// A FUSE request handle passed to the task that replies to it (libfuse allows replies from
/// any thread, exactly once).
struct RequestHandle: @unchecked Sendable {
    let req: fuse_req_t
    init(_ req: fuse_req_t) { self.req = req }
}

enum ChunkErrno {
    static func code(for error: any Error) -> Int32 {
        // The archive changed since the scan: an object rewritten or gone is never served, and
        // ESTALE tells the reader the mount's view is out of date.
        if let store = error as? ObjectStoreError, store.kind == .changed || store.kind == .notFound { return ESTALE }
        if error is ChunkTimeout { return ETIMEDOUT }
        return EIO
    }
}
