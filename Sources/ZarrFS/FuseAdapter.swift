import CFuse
import Foundation
import Logging
import Synchronization
import VirtualZarr
#if canImport(Glibc)
import Glibc
#endif

/// The libfuse3 low-level adapter: each callback asks the `ZarrFilesystem` core and translates
/// its answer into a reply; a read the cache cannot answer goes to a Swift task, which replies
/// from whichever thread it finishes on. Mounted read-only with `default_permissions`.
public final class FuseMount: Sendable {
    public let filesystem: ZarrFilesystem
    var logger: Logger { filesystem.logger }
    let timeout: Double = 3600

    public static let statusAttribute = ZarrFilesystem.statusAttribute

    /// Largest read the kernel may send, and its readahead (the 1 MiB).
    static let maxRead: UInt32 = 1 << 20
    /// Reads handed to Swift tasks and not yet replied to; the session outlives them.
    private let pendingReplies = DispatchGroup()

    public init(filesystem: ZarrFilesystem) {
        self.filesystem = filesystem
    }

    /// Why the kernel mount could not be made.
    public enum MountError: Error, CustomStringConvertible, Equatable {
        case sessionNotCreated
        case signalHandlersNotInstalled
        case mountFailed(mountpoint: String)

        public var description: String {
            switch self {
            case .sessionNotCreated: "libfuse could not create a session"
            case .signalHandlersNotInstalled: "cannot install signal handlers"
            case .mountFailed(let mountpoint):
                "\(mountpoint): mount failed (is it an empty directory, is /dev/fuse available, is a stale mount there? try `zarrmount unmount \(mountpoint)`)"
            }
        }
    }

    /// Mounts at `mountpoint` and serves requests until unmounted or signalled (SIGINT, SIGTERM,
    /// SIGHUP end the loop; reads in flight are answered before the session goes away); `ready`
    /// runs once the kernel mount exists.
    public func run(at mountpoint: String, allowOther: Bool, ready: () -> Void) throws {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, connection in
            guard let connection else { return }
            cfuse_configure_connection(connection, FuseMount.maxRead)
        }
        ops.lookup = { req, parent, name in
            guard let req, let name else { return }
            FuseMount.replyEntry(req, FuseMount.from(req).filesystem.lookup(parent: UInt64(parent), name: String(cString: name)))
        }
        // Inodes are permanent (derived from the manifest), so lookup counts need no bookkeeping.
        ops.forget = { req, _, _ in
            guard let req else { return }
            fuse_reply_none(req)
        }
        ops.getattr = { req, inode, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            switch mount.filesystem.getattr(UInt64(inode)) {
            case .success(let attributes):
                _ = cfuse_reply_attr(
                    req, inode, attributes.isDirectory ? 1 : 0, attributes.size, attributes.modified, mount.timeout,
                    attributes.mode ?? -1, attributes.uid, attributes.gid)
            case .failure(let error): _ = fuse_reply_err(req, error.errno)
            }
        }
        ops.opendir = { req, inode, info in
            guard let req, let info else { return }
            switch FuseMount.from(req).filesystem.opendir(UInt64(inode)) {
            case .success: _ = fuse_reply_open(req, info)
            case .failure(let error): _ = fuse_reply_err(req, error.errno)
            }
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
            switch FuseMount.from(req).filesystem.open(UInt64(inode), writable: cfuse_open_flags_writable(info) != 0) {
            case .success:
                cfuse_set_keep_cache(info)
                _ = fuse_reply_open(req, info)
            case .failure(let error): _ = fuse_reply_err(req, error.errno)
            }
        }
        ops.release = { req, _, _ in
            guard let req else { return }
            _ = fuse_reply_err(req, 0)
        }
        ops.read = { req, inode, size, offset, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            if let answer = mount.filesystem.cachedRead(UInt64(inode), offset: UInt64(offset), size: size) {
                FuseMount.replyBytes(req, answer)
                return
            }
            let request = RequestHandle(req)
            mount.pendingReplies.enter()
            Task {
                defer { mount.pendingReplies.leave() }
                FuseMount.replyBytes(request.req, await mount.filesystem.read(UInt64(inode), offset: UInt64(offset), size: size))
            }
        }
        ops.statfs = { req, _ in
            guard let req else { return }
            let (bytes, inodes) = FuseMount.from(req).filesystem.statfs()
            _ = cfuse_reply_statfs(req, bytes, inodes)
        }
        ops.getxattr = { req, inode, name, size in
            guard let req, let name else { return }
            FuseMount.replyAttribute(req, FuseMount.from(req).filesystem.getxattr(UInt64(inode), name: String(cString: name), size: size), size: size)
        }
        ops.listxattr = { req, inode, size in
            guard let req else { return }
            FuseMount.replyAttribute(req, FuseMount.from(req).filesystem.listxattr(UInt64(inode), size: size), size: size)
        }
        let options = "ro,default_permissions,fsname=zarrmount,subtype=zarrmount,max_read=\(Self.maxRead)" + (allowOther ? ",allow_other" : "")
        let arguments = ["zarrmount", "-o", options]
        var cArguments = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        guard
            let created = cArguments.withUnsafeMutableBufferPointer({ pointer in
                cfuse_session_new(Int32(pointer.count), pointer.baseAddress, &ops, userdata)
            })
        else { throw MountError.sessionNotCreated }
        guard cfuse_install_exit_handlers(created) == 0 else {
            fuse_session_destroy(created)
            throw MountError.signalHandlersNotInstalled
        }
        defer { cfuse_remove_exit_handlers() }
        guard fuse_session_mount(created, mountpoint) == 0 else {
            fuse_session_destroy(created)
            throw MountError.mountFailed(mountpoint: mountpoint)
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
        let seconds = Double((deadline - .now).components.seconds)
        return pendingReplies.wait(timeout: .now() + max(0, seconds)) == .success
    }

    /// One page of a directory listing, as many entries as fit in `size` bytes; with `plus`,
    /// each entry carries its attributes so `ls -l` needs no lookups.
    private func listDirectory(_ req: fuse_req_t, inode: fuse_ino_t, size: Int, offset: off_t, plus: Bool) {
        let entries: [ZarrFilesystem.DirectoryEntry]
        switch filesystem.readdir(UInt64(inode), offset: Int(offset), limit: max(1, size / 32)) {
        case .success(let listed): entries = listed
        case .failure(let error): _ = fuse_reply_err(req, error.errno); return
        }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        for entry in entries {
            let attributes = entry.attributes
            let need = buffer.withUnsafeMutableBufferPointer { pointer in
                plus
                    ? cfuse_add_direntry_plus(
                        req, pointer.baseAddress! + used, size - used, entry.name, fuse_ino_t(attributes.inode),
                        attributes.isDirectory ? 1 : 0, attributes.size, attributes.modified, timeout, off_t(entry.next),
                        attributes.mode ?? -1, attributes.uid, attributes.gid)
                    : cfuse_add_direntry(
                        req, pointer.baseAddress! + used, size - used, entry.name, fuse_ino_t(attributes.inode),
                        attributes.isDirectory ? 1 : 0, off_t(entry.next))
            }
            guard used + need <= size else { break }
            used += need
        }
        _ = buffer.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
    }

    private static func replyEntry(_ req: fuse_req_t, _ answer: Result<ZarrFilesystem.Attributes, FilesystemError>) {
        switch answer {
        case .success(let attributes):
            _ = cfuse_reply_entry(
                req, fuse_ino_t(attributes.inode), attributes.isDirectory ? 1 : 0, attributes.size, attributes.modified,
                from(req).timeout, attributes.mode ?? -1, attributes.uid, attributes.gid)
        case .failure(let error): _ = fuse_reply_err(req, error.errno)
        }
    }

    private static func replyBytes(_ req: fuse_req_t, _ answer: Result<ArraySlice<UInt8>, FilesystemError>) {
        switch answer {
        case .success(let bytes):
            _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count) }
        case .failure(let error): _ = fuse_reply_err(req, error.errno)
        }
    }

    /// An extended attribute's value, or only its length when the caller gave no buffer.
    private static func replyAttribute(_ req: fuse_req_t, _ answer: Result<[UInt8], FilesystemError>, size: Int) {
        switch answer {
        case .success(let value) where size == 0: _ = fuse_reply_xattr(req, value.count)
        case .success(let value):
            _ = value.withUnsafeBufferPointer { fuse_reply_buf(req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), value.count) }
        case .failure(let error): _ = fuse_reply_err(req, error.errno)
        }
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
