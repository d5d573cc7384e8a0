/// What a file's first bytes say it is, for choosing a parser and for error messages that tell a
/// user what they pointed zarrmount at ("a GRIB file, not netCDF").
///
/// It lives in ByteSource, below every parser, because the choice of parser is made from it: the
/// HDF5 and netCDF-3 parsers both sit above it and neither has to know the other.
///
/// Only offset 0 is looked at: an HDF5 file with a user block (its signature at 512, 1024, ...)
/// classifies as `.other`, and the HDF5 parser's own signature search finds it.
public enum FileSignature: Sendable, Equatable, CustomStringConvertible {
    /// netCDF classic (`CDF\x01`).
    case netCDF3Classic
    /// netCDF 64-bit offset (`CDF\x02`, CDF-2).
    case netCDF3Offset64
    /// netCDF 64-bit data (`CDF\x05`, CDF-5).
    case netCDF3Data64
    /// `CDF` followed by a version byte no netCDF release writes.
    case netCDF3UnknownVersion(UInt8)
    /// HDF5, and so possibly netCDF-4 (`\x89HDF\r\n\x1a\n`).
    case hdf5
    /// HDF4 (`\x0e\x03\x13\x01`), which netCDF-C reads only when built with HDF4 support.
    case hdf4
    case grib
    case gzip
    case zip
    case bzip2
    case zstd
    /// `<` after optional whitespace or a byte order mark: an HTML error page or an XML document.
    case markup
    /// `{` after optional whitespace: JSON (a kerchunk reference file, an error response).
    case json
    case empty
    /// Anything else, with the first bytes looked at (up to 8).
    case other([UInt8])

    /// How many leading bytes `classify` needs to tell every case apart (more are ignored,
    /// fewer give a best guess).
    public static let bytesNeeded = 64

    /// Classifies a file from its first bytes (`bytesNeeded` suffice).
    public static func classify(_ prefix: some Collection<UInt8>) -> FileSignature {
        let bytes = Array(prefix.prefix(bytesNeeded))
        guard !bytes.isEmpty else { return .empty }
        func starts(with magic: [UInt8]) -> Bool { bytes.starts(with: magic) }
        if bytes.count >= 4, starts(with: Array("CDF".utf8)) {
            switch bytes[3] {
            case 1: return .netCDF3Classic
            case 2: return .netCDF3Offset64
            case 5: return .netCDF3Data64
            default: return .netCDF3UnknownVersion(bytes[3])
            }
        }
        if starts(with: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]) { return .hdf5 }
        if starts(with: [0x0e, 0x03, 0x13, 0x01]) { return .hdf4 }
        if starts(with: Array("GRIB".utf8)) { return .grib }
        if starts(with: [0x1f, 0x8b]) { return .gzip }
        if starts(with: [0x50, 0x4b, 0x03, 0x04]) { return .zip }
        if starts(with: Array("BZh".utf8)) { return .bzip2 }
        if starts(with: [0x28, 0xb5, 0x2f, 0xfd]) { return .zstd }
        // Text formats may open with a UTF-8 byte order mark and whitespace.
        var text = bytes[...]
        if text.starts(with: [0xef, 0xbb, 0xbf]) { text = text.dropFirst(3) }
        if let first = text.first(where: { ![0x20, 0x09, 0x0a, 0x0d].contains($0) }) {
            if first == UInt8(ascii: "<") { return .markup }
            if first == UInt8(ascii: "{") { return .json }
        }
        return .other(Array(bytes.prefix(8)))
    }

    /// Whether the file is netCDF-3 in a version this project reads.
    public var isNetCDF3: Bool {
        switch self {
        case .netCDF3Classic, .netCDF3Offset64, .netCDF3Data64: return true
        default: return false
        }
    }

    /// What the file is, as the end of a sentence: "a GRIB file, not netCDF".
    public var description: String {
        switch self {
        case .netCDF3Classic: return "a netCDF-3 classic file"
        case .netCDF3Offset64: return "a netCDF-3 64-bit offset file"
        case .netCDF3Data64: return "a netCDF-3 64-bit data (CDF-5) file"
        case .netCDF3UnknownVersion(let version):
            return "a file that starts like netCDF-3 (\"CDF\") but with version byte \(version), which no netCDF release writes"
        case .hdf5: return "an HDF5 file (netCDF-4 is HDF5)"
        case .hdf4: return "an HDF4 file, not netCDF"
        case .grib: return "a GRIB file, not netCDF"
        case .gzip: return "a gzip-compressed file (decompress it first), not netCDF"
        case .zip: return "a zip archive (unpack it first), not netCDF"
        case .bzip2: return "a bzip2-compressed file (decompress it first), not netCDF"
        case .zstd: return "a zstd-compressed file (decompress it first), not netCDF"
        case .markup: return "an HTML page (often a server's error page) or an XML document, not netCDF"
        case .json: return "a JSON document (a server's error response, or a kerchunk reference file, which mount --references FILE serves), not netCDF"
        case .empty: return "an empty file"
        case .other(let bytes):
            let hex = bytes.map { byte in String(byte, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            let ascii = String(bytes.map { (0x20..<0x7f).contains($0) ? Character(UnicodeScalar($0)) : "." })
            return "an unrecognised file starting with \(hex) (\"\(ascii)\")"
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
