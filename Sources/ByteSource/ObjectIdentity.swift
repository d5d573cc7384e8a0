/// How zarrmount knows that an object is still the one it scanned; every chunk read checks it,
/// so a rewritten object is an error, never its new bytes.
public enum ObjectIdentity: Sendable, Hashable, CustomStringConvertible {
    /// A strong ETag, as the server spells it (quotes included); sent as `If-Match`.
    case etag(String)
    /// An HTTP server's `Last-Modified` date, for servers without a strong ETag; sent as
    /// `If-Unmodified-Since`.
    case lastModified(String)
    /// A local file: device, inode, size, and modification and change times in nanoseconds
    /// (a rewrite in place moves the change time even when size and mtime are kept).
    case file(device: UInt64, inode: UInt64, size: Int64, modified: Int64, changed: Int64)

    /// The spelling kept in the manifest cache: the ETag, `last-modified:DATE` or
    /// `file:DEV:INO:SIZE:MTIME:CTIME`.
    public var encoded: String {
        switch self {
        case .etag(let tag): return tag
        case .lastModified(let date): return "last-modified:" + date
        case .file(let device, let inode, let size, let modified, let changed): return "file:\(device):\(inode):\(size):\(modified):\(changed)"
        }
    }

    /// Reads `encoded` back; anything that is not one of the other two spellings is an ETag.
    public init(encoded text: String) {
        if text.hasPrefix("last-modified:") {
            self = .lastModified(String(text.dropFirst("last-modified:".count)))
            return
        }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        if fields.count == 6, fields[0] == "file", let device = UInt64(fields[1]), let inode = UInt64(fields[2]), let size = Int64(fields[3]),
            let modified = Int64(fields[4]), let changed = Int64(fields[5])
        {
            self = .file(device: device, inode: inode, size: size, modified: modified, changed: changed)
            return
        }
        self = .etag(text)
    }

    public var description: String { encoded }
}
