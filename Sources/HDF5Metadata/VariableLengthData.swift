import ByteSource

/// Variable-length string values: their descriptors sit in the dataset's raw data, the bytes
/// in global heap collections. Metadata-sized work that the virtual dataset layer needs to
/// inline string variables.
public enum VariableLengthData {
    /// Decodes `count` variable-length strings from their stored descriptors (the dataset's
    /// decoded raw bytes, in file order). `fetch` reads the file at absolute offsets.
    public static func strings(
        descriptors: [UInt8], count: Int, file info: HDF5FileInfo,
        fetch: @escaping @Sendable (UInt64, Int) async throws -> [UInt8]
    ) async throws -> [String] {
        let source = FetchingSource(name: info.name, fileSize: info.size, fetch: fetch)
        let context = FileContext(
            source: source, fileSize: info.size, base: info.superblock.position,
            offsetSize: info.superblock.offsetSize, lengthSize: info.superblock.lengthSize, limits: ParseLimits(),
            policy: .sequential)
        let descriptorSize = 4 + context.offsetSize + 4
        guard descriptors.count >= count * descriptorSize else {
            throw HDF5FileError(
                file: info.name,
                HDF5Error(
                    .truncated, "variable-length descriptors", at: 0,
                    "\(descriptors.count) bytes for \(count) strings"))
        }
        var strings: [String] = []
        strings.reserveCapacity(count)
        do {
            for index in 0..<count {
                var cursor = context.cursor(
                    Array(descriptors[(index * descriptorSize)..<((index + 1) * descriptorSize)]), at: 0,
                    "variable-length descriptor")
                let length = try cursor.u32()
                let collection = try cursor.address()
                let objectIndex = try cursor.u32()
                guard let collection, collection != 0, length > 0 else {
                    strings.append("")
                    continue
                }
                let bytes = try await context.globalHeapObject(collection: collection, index: objectIndex)
                strings.append(String(decoding: bytes.prefix(Int(length)).prefix { $0 != 0 }, as: UTF8.self))
            }
        } catch let error as HDF5Error {
            throw HDF5FileError(file: info.name, error)
        }
        return strings
    }
}

/// A source over a fetch function (absolute offsets).
struct FetchingSource: RandomAccessSource {
    let name: String
    let fileSize: UInt64
    let fetch: @Sendable (UInt64, Int) async throws -> [UInt8]

    func size() async throws -> UInt64 { fileSize }
    func read(offset: UInt64, length: Int) async throws -> [UInt8] {
        guard offset < fileSize else { return [] }
        return try await fetch(offset, Int(min(UInt64(length), fileSize - offset)))
    }
}
