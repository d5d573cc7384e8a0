/// Why a file, or one object in it, could not be parsed. Always names the structure and the
/// absolute file offset where parsing stopped, so a user can check the bytes with `h5dump` or
/// `xxd`.
public struct HDF5Error: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// No HDF5 signature where one was expected.
        case notHDF5 = "not an HDF5 file"
        /// The structure runs past the end of the file or of its own declared size.
        case truncated = "truncated"
        /// A value that the format does not allow (bad signature, version, size, address).
        case corrupt = "corrupt"
        case checksumMismatch = "checksum mismatch"
        /// Valid HDF5 that this parser does not handle; the message says which feature.
        case unsupported = "unsupported feature"
        /// A safety limit was hit (depth, count, size); the file may be valid but hostile.
        case limitExceeded = "limit exceeded"
        case cycle = "cycle"
        /// The bytes could not be read at all.
        case io = "read error"
    }

    public var kind: Kind
    public var structure: String
    /// Absolute position in the file (user block included).
    public var offset: UInt64
    public var detail: String

    public init(_ kind: Kind, _ structure: String, at offset: UInt64, _ detail: String) {
        self.kind = kind
        self.structure = structure
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        "\(kind.rawValue) in \(structure) at offset \(offset): \(detail)"
    }
}

/// An `HDF5Error` with the file it came from, as the CLI and scanner report it.
public struct HDF5FileError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var underlying: HDF5Error

    public init(file: String, _ underlying: HDF5Error) {
        self.file = file
        self.underlying = underlying
    }

    public var description: String { "\(file): \(underlying)" }
}
