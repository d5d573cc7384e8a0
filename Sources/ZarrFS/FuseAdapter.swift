import CFuse
import Foundation
import Logging
import ObjectStore
import VirtualZarr
#if canImport(Glibc)
import Glibc
#endif

/// The thin libfuse3 low-level adapter: each callback looks the request up in the `ZarrTree`
/// and replies, or hands a read to Swift concurrency and returns; the reply is sent from
/// whichever thread finishes. Mounted read-only with `default_permissions`.
public final class FuseMount: @unchecked Sendable {
    // @unchecked: `session` is created once before the loop runs and only used by libfuse's
    // own thread-safe entry points afterwards.
    public let tree: ZarrTree
    public let reader: ChunkReader
    let logger: Logger
    let mtime: Int
    let timeout: Double = 3600
    private var session: OpaquePointer?

    /// Describes the mount for `zarrmount status` (the root's `user.zarrmount.status` xattr).
    let status: @Sendable () -> [UInt8]
    public static let statusAttribute = "user.zarrmount.status"

    public init(tree: ZarrTree, reader: ChunkReader, logger: Logger, status: @escaping @Sendable () -> [UInt8] = { [] }) {
        self.tree = tree
        self.reader = reader
        self.logger = logger
        self.status = status
        mtime = Int(Date().timeIntervalSince1970)
    }

    public struct MountError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Mounts at `mountpoint` and serves requests until unmounted or signalled; `ready` runs once
    /// the kernel mount exists.
    public func run(at mountpoint: String, allowOther: Bool, ready: () -> Void) throws {
        var ops = fuse_lowlevel_ops()
        ops.lookup = { req, parent, name in
            guard let req, let name else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.lookup(UInt64(parent), String(cString: name)) else { _ = fuse_reply_err(req, ENOENT); return }
            _ = cfuse_reply_entry(req, fuse_ino_t(entry.inode), entry.content == .directory ? 1 : 0, entry.size, mount.mtime, mount.timeout)
        }
        ops.getattr = { req, inode, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            _ = cfuse_reply_attr(req, inode, entry.content == .directory ? 1 : 0, entry.size, mount.mtime, mount.timeout)
        }
        ops.readdir = { req, inode, size, offset, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            guard let directory = mount.tree.entry(UInt64(inode)), directory.content == .directory else { _ = fuse_reply_err(req, ENOTDIR); return }
            var buffer = [CChar](repeating: 0, count: size)
            var used = 0
            // Positions 1 and 2 are "." and ".."; the tree's positions follow.
            var position = Int(offset)
            if position < 2 {
                for (index, name) in [".", ".."].enumerated() where index >= position {
                    let parent = index == 0 ? UInt64(inode) : (mount.tree.parent(UInt64(inode)) ?? UInt64(inode))
                    let need = buffer.withUnsafeMutableBufferPointer { cfuse_add_direntry(req, $0.baseAddress! + used, size - used, name, fuse_ino_t(parent), 1, off_t(index + 1)) }
                    if used + need > size { break }
                    used += need
                    position = index + 1
                }
            }
            if used < size {
                for (next, entry) in mount.tree.list(UInt64(inode), from: max(0, position - 2), limit: max(1, size / 32)) {
                    let need = buffer.withUnsafeMutableBufferPointer {
                        cfuse_add_direntry(req, $0.baseAddress! + used, size - used, entry.name, fuse_ino_t(entry.inode),
                                           entry.content == .directory ? 1 : 0, off_t(next + 2))
                    }
                    if used + need > size { break }
                    used += need
                }
            }
            _ = buffer.withUnsafeBufferPointer { fuse_reply_buf(req, $0.baseAddress, used) }
        }
        ops.open = { req, inode, info in
            guard let req, let info else { return }
            if cfuse_open_flags_writable(info) != 0 { _ = fuse_reply_err(req, EROFS); return }
            cfuse_set_keep_cache(info)
            _ = fuse_reply_open(req, info)
        }
        ops.read = { req, inode, size, offset, _ in
            guard let req else { return }
            let mount = FuseMount.from(req)
            guard let entry = mount.tree.entry(UInt64(inode)) else { _ = fuse_reply_err(req, ENOENT); return }
            let request = RequestHandle(req)
            Task {
                do {
                    let bytes = try await mount.reader.read(entry, offset: UInt64(offset), size: size)
                    _ = bytes.withUnsafeBufferPointer { fuse_reply_buf(request.req, UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count) }
                } catch {
                    mount.logger.error("read failed", metadata: ["inode": "\(inode)", "error": "\(error)"])
                    _ = fuse_reply_err(request.req, ChunkErrno.code(for: error))
                }
            }
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
        let arguments = ["zarrmount", "-o", "ro,default_permissions,fsname=zarrmount,subtype=zarrmount" + (allowOther ? ",allow_other" : "")]
        var cArguments = arguments.map { strdup($0) }
        defer { cArguments.forEach { free($0) } }
        let userdata = Unmanaged.passUnretained(self).toOpaque()
        guard let created = cArguments.withUnsafeMutableBufferPointer({ pointer in
            cfuse_session_new(Int32(pointer.count), pointer.baseAddress, &ops, userdata)
        }) else { throw MountError(description: "libfuse could not create a session") }
        session = created
        defer { fuse_session_destroy(created) }
        guard fuse_set_signal_handlers(created) == 0 else { throw MountError(description: "cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(created) }
        guard fuse_session_mount(created, mountpoint) == 0 else {
            throw MountError(description: "\(mountpoint): mount failed (is it an empty directory, is /dev/fuse available, is a stale mount there? try `zarrmount unmount \(mountpoint)`)")
        }
        defer { fuse_session_unmount(created) }
        ready()
        _ = fuse_session_loop(created)
    }

    /// The status document of the mount at `mountpoint`, or nil when it is not a zarrmount mount.
    public static func readStatus(_ mountpoint: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let count = cfuse_getxattr(mountpoint, statusAttribute, &buffer, buffer.count)
        guard count >= 0 else { return nil }
        return String(decoding: buffer.prefix(count), as: UTF8.self)
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
        if let store = error as? ObjectStoreError, store.kind == .changed { return ESTALE }
        return EIO
    }
}
