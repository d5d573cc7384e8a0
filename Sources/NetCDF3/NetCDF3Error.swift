/// Why a netCDF-3 header could not be parsed. Always names the structure ("variable list",
/// "attribute units of variable T") and the byte offset where parsing stopped, so a user can
/// check the bytes with `xxd` or `ncdump -h`.
public struct NetCDF3Error: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// The file does not start with a netCDF-3 magic number; the detail says what it is.
        case notNetCDF3 = "not a netCDF-3 file"
        /// The header runs past the end of the file.
        case truncated = "truncated"
        /// A value the format does not allow (bad tag, negative size, dimension id out of range).
        case corrupt = "corrupt"
        /// Valid-looking netCDF that this parser does not handle; the detail says which feature.
        case unsupported = "unsupported feature"
        /// A safety limit was hit (header size, counts, name length); the file may be valid
        /// but hostile.
        case limitExceeded = "limit exceeded"
        /// The bytes could not be read at all.
        case io = "read error"
    }

    public var kind: Kind
    public var structure: String
    /// Absolute position in the file.
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

/// A `NetCDF3Error` with the file it came from, as the CLI and scanner report it.
public struct NetCDF3FileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var underlying: NetCDF3Error

    public init(file: String, _ underlying: NetCDF3Error) {
        self.file = file
        self.underlying = underlying
    }

    public var description: String { "\(file): \(underlying)" }
}
