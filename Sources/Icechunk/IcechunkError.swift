/// What goes wrong reading an Icechunk repository, each naming the repository's file or
/// reference and saying what to do.
public enum IcechunkError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No `refs/branch.main/ref.json`: every Icechunk repository has a main branch.
    case notARepository(root: String)
    case missingReference(kind: String, name: String, available: [String])
    case deletedTag(name: String)
    case badObjectID(String, file: String)
    case missingFile(String)
    case malformed(file: String, structure: String, offset: Int, detail: String)
    case unsupportedSpecVersion(file: String, version: UInt8)
    case wrongFileType(file: String, expected: UInt8, found: UInt8)
    case unsupportedCompression(file: String, code: UInt8)
    case tooLarge(file: String, limit: Int)
    case fileTooLarge(file: String, size: UInt64, limit: Int)
    /// An array whose Zarr metadata the mount cannot serve as it is.
    case unsupportedMetadata(path: String, detail: String)

    public var description: String {
        switch self {
        case .notARepository(let root):
            return
                "\(root) is not an Icechunk repository (it has no refs/branch.main/ref.json): give the directory or s3:// prefix the repository was created in"
        case .missingReference(let kind, let name, let available):
            let listed = available.isEmpty ? "none" : available.joined(separator: ", ")
            return "the repository has no \(kind) \"\(name)\" (its \(kind == "branch" ? "branches" : "tags"): \(listed))"
        case .deletedTag(let name):
            return "tag \"\(name)\" was deleted from the repository (a deleted tag is never recreated): use another tag or a snapshot id"
        case .badObjectID(let text, let file):
            return "\(file): \"\(text)\" is not an Icechunk object id (20 characters of Crockford base 32)"
        case .missingFile(let key):
            return "the repository's file \(key) is missing: the repository is incomplete or was garbage-collected past this snapshot"
        case .malformed(let file, let structure, let offset, let detail):
            return "\(file): malformed \(structure) at byte \(offset): \(detail)"
        case .unsupportedSpecVersion(let file, let version):
            return "\(file): Icechunk format version \(version), which zarrmount does not read (it reads version 1, written by icechunk 0.2 to 1.x)"
        case .wrongFileType(let file, let expected, let found):
            return "\(file): an Icechunk file of type \(found) where type \(expected) belongs"
        case .unsupportedCompression(let file, let code):
            return "\(file): compression code \(code), which Icechunk's format does not define (0 none, 1 zstd)"
        case .tooLarge(let file, let limit):
            return "\(file): decompresses to more than \(limit) bytes, refused"
        case .fileTooLarge(let file, let size, let limit):
            return "\(file): \(size) bytes, more than the \(limit) a metadata file may have; refused (is this an Icechunk repository?)"
        case .unsupportedMetadata(let path, let detail):
            return "array \(path) of the repository: \(detail)"
        }
    }
}
