import ByteSource

/// Reads the header of a netCDF-3 file (classic, 64-bit offset, 64-bit data): dimensions,
/// attributes, variables and where each variable's data lies. The data itself is not read.
public enum NetCDF3File {
    /// The first read's size: netCDF-C's headers are a few kilobytes, and a remote read of
    /// 64 KiB costs about what a read of 4 KiB does.
    public static let defaultFirstReadBytes = 64 << 10

    /// Parses the header of `source`. Most files take one read of the first `firstReadBytes`;
    /// a longer header takes further reads of what is missing, each at least four times the
    /// bytes read so far, up to `limits.maxHeaderBytes` (so a handful at most).
    public static func parse(
        _ source: any RandomAccessSource, limits: NetCDF3Limits = NetCDF3Limits(),
        firstReadBytes: Int = defaultFirstReadBytes
    ) async throws(NetCDF3FileError) -> NetCDF3Header {
        func fail(_ error: NetCDF3Error) -> NetCDF3FileError { NetCDF3FileError(file: source.name, error) }
        let fileSize: UInt64
        do {
            fileSize = try await source.size()
        } catch {
            throw fail(NetCDF3Error(.io, "file", at: 0, "its size could not be read: \(error)"))
        }
        let cap = Int(min(fileSize, UInt64(max(limits.maxHeaderBytes, 4))))
        var bytes: [UInt8] = []
        var wanted = min(max(firstReadBytes, 4), cap)
        while true {
            if wanted > bytes.count {
                let more: [UInt8]
                do {
                    more = try await source.read(offset: UInt64(bytes.count), length: wanted - bytes.count)
                } catch {
                    throw fail(NetCDF3Error(.io, "header", at: UInt64(bytes.count), "\(wanted - bytes.count) bytes could not be read: \(error)"))
                }
                guard more.count == wanted - bytes.count else {
                    throw fail(
                        NetCDF3Error(
                            .truncated, "header", at: UInt64(bytes.count + more.count),
                            "the file ends at byte \(bytes.count + more.count), though it claimed \(fileSize) bytes"))
                }
                bytes += more
            }
            do throws(ParseStop) {
                return try parsePrefix(bytes, name: source.name, fileSize: fileSize, limits: limits)
            } catch {
                switch error {
                case .failed(let error):
                    throw fail(error)
                case .needBytes(let end, let structure, let offset):
                    // The parser asks for more only below `cap`; anything else would be a parser
                    // bug, which must end in an error rather than a loop.
                    guard end > bytes.count, end <= cap else {
                        throw fail(NetCDF3Error(.corrupt, structure, at: offset, "the header parse asked for byte \(end) again"))
                    }
                    wanted = min(max(end, bytes.count * 4), cap)
                }
            }
        }
    }

    /// Parses the header from the file's first bytes (`bytes`; the whole header, or the whole
    /// file) in a file of `fileSize` bytes (default: `bytes` is the whole file). Errors carry no
    /// file name: `name` only names the header.
    public static func parse(
        bytes: [UInt8], name: String = "<memory>", fileSize: UInt64? = nil, limits: NetCDF3Limits = NetCDF3Limits()
    ) throws(NetCDF3Error) -> NetCDF3Header {
        do throws(ParseStop) {
            return try parsePrefix(bytes, name: name, fileSize: fileSize ?? UInt64(bytes.count), limits: limits)
        } catch {
            switch error {
            case .failed(let error):
                throw error
            case .needBytes(let end, let structure, let offset):
                throw NetCDF3Error(
                    .truncated, structure, at: offset, "the header continues to at least byte \(end), past the \(bytes.count) bytes given")
            }
        }
    }
}
