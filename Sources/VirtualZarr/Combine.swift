import ByteSource
import JSONValue

public enum AttributePolicy: String, Sendable, CaseIterable {
    /// The first file's attributes.
    case first
    /// Attributes equal in every file that has them; conflicting ones are dropped.
    case dropConflicts = "drop_conflicts"
}

/// How the files of an archive appear in the dataset.
public enum FileLayout: String, Sendable, CaseIterable {
    /// One dataset: files combined along the concat dimension (or merged).
    case combined
    /// One group per file, named after the file, nothing combined.
    case perFile = "per_file"
}

public struct CombineOptions: Sendable {
    public var concatDimension: String?
    public var attributes: AttributePolicy = .first
    public var layout: FileLayout = .combined
    /// Variables without the concat dimension in several files: nil keeps the first file's, as
    /// `.override` does, but only once a concat dimension is known.
    public var compat: CompatPolicy?
    /// Files were ordered by the concat coordinate, so it must increase from file to file.
    public var orderedByCoordinate = false
    /// Variables whose files pack them differently are unpacked per file instead of refused
    /// (only for a decoded view, which can serve them; `--decoded --unpack`).
    public var unpack = false
    /// Variables whose chunk shapes differ between files are served on one grid, assembled from
    /// decoded source chunks (only a decoded view can serve them).
    public var regrid = false
    /// Served chunk shapes by variable path (`--chunks VAR=1,250,320`); decoded views only.
    public var chunks: [String: [UInt64]] = [:]

    public init(concatDimension: String? = nil, attributes: AttributePolicy = .first) {
        self.concatDimension = concatDimension
        self.attributes = attributes
    }
}

/// Why files cannot become one dataset as asked. Each case carries what it is about; `detail`
/// is the whole sentence a user reads, naming the files and what to do.
public enum CombineError: Error, CustomStringConvertible, Sendable, Equatable {
    case noFiles
    /// The files disagree on a variable (its dtype, codecs, dimensions, grid, fill or encoding
    /// attributes), or one lacks it; `files` are the two compared.
    case variableDisagrees(variable: String, files: [String], detail: String)
    /// A concat coordinate whose values or units cannot share one axis.
    case coordinateConflict(coordinate: String, files: [String], detail: String)
    /// The files do not say along which dimension they combine.
    case noCombineDimension(fileCount: Int, detail: String)
    /// A combine option (`--concat-dim`, `--stack-dim`, `--chunks`) that cannot apply.
    case invalidOption(option: String, detail: String)
    /// The combined chunk grid exceeds what a manifest indexes.
    case gridTooLarge(variable: String, dimension: String, gridShape: [Int], maxChunks: Int)
    /// Re-encoding (unpacking onto a new grid) failed.
    case codec(CodecError)
    /// A file with nothing along the concat dimension among files that have it (a static grid
    /// file in the glob).
    case fileWithoutDimension(file: String, dimension: String, holder: String)

    public var description: String {
        switch self {
        case .noFiles: "nothing to combine: no files"
        case .variableDisagrees(_, _, let detail), .coordinateConflict(_, _, let detail), .noCombineDimension(_, let detail),
            .invalidOption(_, let detail):
            detail
        case .gridTooLarge(let variable, let dimension, let gridShape, let maxChunks):
            "cannot concatenate variable \(variable) along \(dimension): the combined chunk grid \(gridShape) has more than \(maxChunks) chunks"
        case .codec(let error): error.description
        case .fileWithoutDimension(let file, let dimension, let holder):
            "\(file) has no variable along \(dimension), unlike \(holder) and the others: a file of another kind (a static grid or constants file) among those to concatenate? Leave it out of the sources, or mount it separately"
        }
    }
}

/// Joins per-file virtual datasets into one, the way kerchunk's MultiZarrToZarr and xarray's
/// `open_mfdataset(combine="nested")` do.
public enum Combiner {
    /// `--layout per_file`: each file in a group of its own, named after the file's stem, or,
    /// when files share a stem (`2020/01/data.nc`, `2020/02/data.nc`), after its path below the
    /// files' common directory (`2020_01_data`): a counter alone would leave readers guessing
    /// which group holds which file. Each group's `zarrmount_source` names its file by that path.
    public static func nest(_ parts: [(name: String, dataset: VirtualDataset)]) -> VirtualDataset {
        var result = VirtualDataset(objects: [], groups: [VirtualGroup(path: "", attributes: [])], arrays: [], warnings: [])
        let relative = relativePaths(parts.map(\.name))
        // The stem; where stems repeat, the path below the common directory; where that repeats
        // too (x.nc beside x.h5), the same with its extension.
        var names = parts.map { groupName(forFile: $0.name) }
        for pass in 0..<2 {
            let counts = names.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
            for index in names.indices where counts[names[index]]! > 1 {
                let flattened = relative[index].replacingOccurrences(of: "/", with: "_")
                names[index] = pass == 0 ? groupName(forFile: flattened) : flattened.hasPrefix(".") ? "file" + flattened : flattened
            }
        }
        var used: Set<String> = []
        for (index, part) in parts.enumerated() {
            var name = names[index]
            var counter = 2
            while !used.insert(name).inserted {
                name = "\(names[index])_\(counter)"
                counter += 1
            }
            let offset = UInt32(result.objects.count)
            result.objects += part.dataset.objects
            result.warnings += part.dataset.warnings.map { "\(name): \($0)" }
            for group in part.dataset.groups {
                var attributes = group.attributes
                if group.path.isEmpty { attributes.append(("zarrmount_source", .string(relative[index]))) }
                result.groups.append(VirtualGroup(path: group.path.isEmpty ? name : name + "/" + group.path, attributes: attributes))
            }
            for array in part.dataset.arrays {
                var moved = array
                moved.path = name + "/" + array.path
                moved.manifest = array.manifest.remappingObjects { $0 + offset }
                result.arrays.append(moved)
            }
        }
        return result
    }

    /// Each path below the paths' longest common directory (`a/x.nc` and `b/x.nc` from
    /// `/data/a/x.nc` and `/data/b/x.nc`); a lone path is its last component.
    static func relativePaths(_ paths: [String]) -> [String] {
        // `/data/run/../b/x.nc` is `b/x.nc` below `/data`; a URL's scheme is left out
        // (`s3://bucket/x.nc` is `bucket/x.nc` among other buckets).
        let components = paths.map { path in
            Location.lexicallyNormalised(path.range(of: "://").map { String(path[$0.upperBound...]) } ?? path).split(separator: "/")
        }
        var common = components.map { $0.count - 1 }.min() ?? 0
        for path in components.dropFirst() {
            common = zip(path.prefix(common), components[0].prefix(common)).prefix { $0 == $1 }.count
        }
        return components.map { $0.dropFirst(common).joined(separator: "/") }
    }

    /// A group name from a path or URL: the last component without its extension, with
    /// characters that cannot be in a Zarr key replaced.
    static func groupName(forFile url: String) -> String {
        var last = String(url.split(separator: "/").last ?? "file")
        if let dot = last.lastIndex(of: "."), dot != last.startIndex { last = String(last[..<dot]) }
        let cleaned = String(last.map { $0 == "/" || $0 == "\\" || $0.isNewline ? "_" : $0 })
        return cleaned.isEmpty || cleaned.hasPrefix(".") ? "file" + cleaned : cleaned
    }

    public static func combine(_ parts: [(name: String, dataset: VirtualDataset)], options: CombineOptions) throws -> VirtualDataset {
        var result = try combineFiles(parts, options: options)
        if !options.chunks.isEmpty { try rechunk(&result, chunks: options.chunks) }
        return result
    }

    static func combineFiles(_ parts: [(name: String, dataset: VirtualDataset)], options: CombineOptions) throws -> VirtualDataset {
        guard let first = parts.first else { throw CombineError.noFiles }
        if options.layout == .perFile { return nest(parts) }
        if parts.count == 1 { return first.dataset }
        let (parts, lent) = options.concatDimension.map { lendingCoordinateUnitsToBounds(parts, dimension: $0) } ?? (parts, [])
        var result = VirtualDataset(objects: [], groups: [], arrays: [], warnings: [])
        var objectOffsets: [UInt32] = []
        for part in parts {
            objectOffsets.append(UInt32(result.objects.count))
            result.objects += part.dataset.objects
            result.warnings += part.dataset.warnings
        }
        result.groups = combineGroups(parts.map(\.dataset.groups), policy: options.attributes)

        // Arrays are found by position and copied once, into the result: a year of daily files
        // holds fifteen thousand of them, and this runs after the last file is scanned.
        var order: [String] = []
        var byPath: [String: [(part: Int, index: Int)]] = [:]
        for (part, dataset) in parts.enumerated() {
            for (index, array) in dataset.dataset.arrays.enumerated() {
                if byPath[array.path] == nil { order.append(array.path) }
                byPath[array.path, default: []].append((part, index))
            }
        }
        if let dimension = options.concatDimension { try checkEveryFileHas(dimension, parts) }
        for path in order {
            let versions = ArrayVersions(parts: parts, positions: byPath[path]!, objectOffsets: objectOffsets)
            if let dimension = options.concatDimension, let axis = versions[0].dimensionNames.firstIndex(of: dimension) {
                // A file holds each path once, so only a short list can miss one (and checking
                // every file against every version is quadratic in the archive's length).
                if versions.positions.count < parts.count {
                    let present = Set(versions.positions.map(\.part))
                    let missing = parts.indices.filter { !present.contains($0) }
                    throw CombineError.variableDisagrees(
                        variable: path, files: missing.map { parts[$0].name },
                        detail:
                            "variable \(path) has dimension \(dimension) but is missing from \(missing.map { parts[$0].name }.prefix(3).joined(separator: ", "))"
                    )
                }
                let unpacking = try checkEncoding(versions, axis: axis, unpack: options.unpack)
                var array: VirtualArray
                if options.regrid,
                    let regridded = try regriddedIfMismatched(
                        versions, axis: axis, dimension: dimension,
                        chunks: options.chunks[path])
                {
                    array = regridded.array
                    if var unpacking {
                        // Source chunks are unpacked once in the served byte order.
                        unpacking.packed = array.dtype
                        array.regridding = try unpackedRegridding(regridded.array.regridding!, unpacking, path: path)
                        array.setUnpackedType()
                    }
                    result.notes.append("\(path): \(regridded.reason)")
                } else {
                    array = try concatenate(versions, axis: axis, dimension: dimension, notes: &result.notes)
                }
                if array.path == dimension, versions.indices.count > 1 {
                    try checkIncreasing(array, versions: versions, strictly: options.orderedByCoordinate, notes: &result.notes)
                } else if axis == 0, WRFTimes.isTimes(path: array.path, dtype: array.dtype, rank: array.shape.count), versions.indices.count > 1 {
                    try checkTimes(array, versions: versions, strictly: options.orderedByCoordinate, notes: &result.notes)
                }
                array.attributes = mergeAttributes(versions.indices.map { versions[$0].attributes }, policy: options.attributes)
                if lent.contains(LentUnits(part: versions.positions[0].part, path: path)) {
                    array.attributes.removeAll { $0.0 == "units" || $0.0 == "calendar" }
                }
                if let units = versions[0].attributes.first(where: { $0.0 == "units" }), array.path == dimension {
                    // The values are in the first file's units whatever the attribute policy.
                    array.attributes.removeAll { $0.0 == "units" }
                    array.attributes.append(units)
                }
                if let unpacking {
                    // A regridded array unpacks as it assembles; others when their chunks are read.
                    if array.regridding == nil { array.unpacking = unpacking }
                    array.attributes.removeAll { Unpacking.attributesRemoved.contains($0.0) }
                    array.attributes.append(
                        (
                            "zarrmount_unpacked",
                            .string(
                                "the files pack \(path) differently; each file's values are unpacked with its own scale_factor, add_offset and fill values into float64, missing values as NaN"
                            )
                        ))
                }
                result.arrays.append(array)
            } else {
                // One file's version is served: how the others store theirs matters only to the
                // default comparison, which compares storage (--compat equals decodes each file's).
                for version in versions.indices.dropFirst() {
                    try checkCompatible(
                        versions[0], versions[version], first: versions.file(0), other: versions.file(version), sameShape: true,
                        storageMatters: options.compat == nil)
                }
                var chosen = versions[0]
                let offset = versions.objectOffset(0)
                chosen.manifest = chosen.manifest.remappingObjects { $0 + offset }
                chosen.attributes = mergeAttributes(versions.indices.map { versions[$0].attributes }, policy: options.attributes)
                result.arrays.append(chosen)
            }
        }
        return result
    }

    /// Names a file with nothing along `dimension`, which would otherwise be reported as missing
    /// the first concatenated variable.
    static func checkEveryFileHas(_ dimension: String, _ parts: [(name: String, dataset: VirtualDataset)]) throws {
        func holds(_ part: (name: String, dataset: VirtualDataset)) -> Bool {
            part.dataset.arrays.contains { $0.dimensionNames.contains(dimension) }
        }
        guard let holder = parts.first(where: holds), let lacking = parts.first(where: { !holds($0) }) else { return }
        throw CombineError.fileWithoutDimension(file: lacking.name, dimension: dimension, holder: holder.name)
    }

    static func combineGroups(_ lists: [[VirtualGroup]], policy: AttributePolicy) -> [VirtualGroup] {
        var order: [String] = []
        var attributes: [String: [[(String, JSON)]]] = [:]
        for list in lists {
            for group in list {
                if attributes[group.path] == nil { order.append(group.path) }
                attributes[group.path, default: []].append(group.attributes)
            }
        }
        return order.map { VirtualGroup(path: $0, attributes: mergeAttributes(attributes[$0]!, policy: policy)) }
    }

    static func mergeAttributes(_ lists: [[(String, JSON)]], policy: AttributePolicy) -> [(String, JSON)] {
        guard let first = lists.first else { return [] }
        switch policy {
        case .first:
            return first
        case .dropConflicts:
            var merged: [(String, JSON)] = []
            var conflicting: Set<String> = []
            for list in lists {
                for (key, value) in list {
                    if let existing = merged.firstIndex(where: { $0.0 == key }) {
                        if merged[existing].1 != value { conflicting.insert(key) }
                    } else {
                        merged.append((key, value))
                    }
                }
            }
            return merged.filter { !conflicting.contains($0.0) }
        }
    }

    static func checkCompatible(
        _ a: borrowing VirtualArray, _ b: borrowing VirtualArray, first: String, other: String, sameShape: Bool,
        axis: Int? = nil, numbersMayWiden: Bool = false, storageMatters: Bool = true
    ) throws {
        // Values read with the scan are re-encoded in one type (`CombineRules.widenedNumbers`);
        // of a variable whose first version is served, only the byte order may differ (--compat
        // equals compares the values in one order).
        let widens = numbersMayWiden && [a.dtype, b.dtype].allSatisfy { [.signed, .unsigned, .float].contains($0.kind) }
        let reordered = !storageMatters && littleEndian(a.dtype) == littleEndian(b.dtype)
        if a.dtype != b.dtype && !widens && !reordered {
            // Concatenated and decoded, each file's chunks are swapped to one byte order
            // (Regridding); unconcatenated, one file's version is served.
            let advice =
                littleEndian(a.dtype) != littleEndian(b.dtype)
                ? "L"
                : axis != nil
                    ? "Mount with --decoded to serve it little-endian from both, l"
                    : "If the files hold the same values in both byte orders, compare them with --compat equals or keep the first file's with --compat override; otherwise l"
            throw CombineError.variableDisagrees(
                variable: a.path, files: [first, other],
                detail:
                    "variable \(a.path) has dtype \(a.dtype.v2String) in \(first) but \(b.dtype.v2String) in \(other). \(advice)eave the variable out with --drop-variables \(a.path)"
            )
        }
        if storageMatters && a.codecs != b.codecs {
            // Decoded, each file's chunks are served through its own pipeline (Regridding).
            let decodable = axis != nil && Codec.foreign(in: a.codecs) == nil && Codec.foreign(in: b.codecs) == nil
            throw CombineError.variableDisagrees(
                variable: a.path, files: [first, other],
                detail:
                    "variable \(a.path) is compressed differently in \(first) (\(Codec.describe(a.codecs))) and \(other) (\(Codec.describe(b.codecs))); a Zarr array has one codec pipeline. \(decodable ? "Mount with --decoded to serve each file's chunks decoded with its own, l" : "L")eave the variable out with --drop-variables \(a.path), or mount the files separately (--layout per_file)"
            )
        }
        if a.dimensionNames != b.dimensionNames {
            throw CombineError.variableDisagrees(
                variable: a.path, files: [first, other],
                detail:
                    "variable \(a.path) has dimensions \(a.dimensionNames) in \(first) but \(b.dimensionNames) in \(other). Leave the variable out with --drop-variables \(a.path)"
            )
        }
        for d in a.shape.indices where d != axis {
            if sameShape && a.shape[d] != b.shape[d] || storageMatters && a.chunkShape[d] != b.chunkShape[d] {
                throw CombineError.variableDisagrees(
                    variable: a.path, files: [first, other],
                    detail:
                        "variable \(a.path) has shape \(a.shape) in chunks of \(a.chunkShape) in \(first) but \(b.shape) in chunks of \(b.chunkShape) in \(other); Zarr has one chunk grid per array. Leave the variable out with --drop-variables \(a.path) (or mount it alone from the files that agree)"
                )
            }
        }
    }

    /// One variable in every file, read in place: a year of daily files holds fifteen thousand
    /// arrays, and copying one retains a dozen buffers.
    struct ArrayVersions {
        let parts: [(name: String, dataset: VirtualDataset)]
        let positions: [(part: Int, index: Int)]
        let objectOffsets: [UInt32]

        var indices: Range<Int> { positions.indices }

        subscript(_ version: Int) -> VirtualArray {
            _read { yield parts[positions[version].part].dataset.arrays[positions[version].index] }
        }

        func file(_ version: Int) -> String { parts[positions[version].part].name }
        func objectOffset(_ version: Int) -> UInt32 { objectOffsets[positions[version].part] }
        func objectCount(_ version: Int) -> Int { parts[positions[version].part].dataset.objects.count }
    }

    /// Joins one variable's versions along `axis`; each version's object ids are shifted by its
    /// file's offset among the combined objects.
    static func concatenate(_ versions: ArrayVersions, axis: Int, dimension: String, notes: inout [String]) throws -> VirtualArray {
        let reencodable = isInlineAlongFirstAxis(versions, axis: axis)
        for version in versions.indices.dropFirst() {
            try checkCompatible(
                versions[0], versions[version], first: versions.file(0), other: versions.file(version), sameShape: true,
                axis: axis, numbersMayWiden: reencodable)
        }
        let allInline = versions.indices.allSatisfy({ versions[$0].manifest.count == 1 && isInline(versions[$0].manifest[0]) })
        let lengths = versions.indices.map { versions[$0].shape[axis] }
        let total = lengths.reduce(0, +)
        var result = versions[0]
        result.shape[axis] = total
        let codecsEmpty = result.codecs.isEmpty

        // Inline raw arrays (decoded coordinates) concatenate by bytes along the leading axis.
        if axis == 0, codecsEmpty, allInline {
            var bytes: [UInt8] = []
            if reencodable, let reencoded = try CombineRules.reencodedTime(versions) {
                bytes = reencoded.bytes
                if reencoded.dtype != result.dtype {
                    result.dtype = reencoded.dtype
                    let fill = result.fillValue.doubleValue ?? 0
                    result.fillBytes =
                        reencoded.dtype.kind == .float
                        ? NumericValues.encode([fill]) : NumericValues.encode([Int64(exactly: fill) ?? 0], as: reencoded.dtype)
                }
                notes.append(reencoded.note)
            } else if let other = versions.indices.first(where: { versions[$0].dtype != result.dtype }) {
                // Bytes of two types are never joined raw; re-encoding them found nothing to read.
                try checkCompatible(
                    versions[0], versions[other], first: versions.file(0), other: versions.file(other), sameShape: true, axis: axis)
            } else if result.dtype.kind == .variableString {
                bytes = try concatenatedStrings(versions)
            } else {
                for version in versions.indices {
                    guard case .inline(let chunk) = versions[version].manifest[0] else { continue }
                    let used = Int(versions[version].shape.reduce(UInt64(versions[version].dtype.itemSize), *))
                    bytes += chunk.prefix(used)
                }
            }
            result.chunkShape[0] = max(total, 1)
            result.manifest = try combinedManifest(result, dimension: dimension, fills: [])
            if result.manifest.count == 1 { result.manifest[0] = .inline(bytes) }
            return result
        }

        let chunk = result.chunkShape[axis]
        // A file chunked otherwise along the axis would have its chunks put in slots of another
        // length: some keys would hold too much data, and the rest would read as fill.
        let sameChunkAlongAxis = versions.indices.allSatisfy { versions[$0].chunkShape[axis] == chunk }
        let aligned = sameChunkAlongAxis && lengths.dropLast().allSatisfy { $0 % chunk == 0 }
        if aligned {
            result.manifest = try combinedManifest(result, dimension: dimension, fills: versions.indices.map { versions[$0].manifest.fillChunk })
            var start: UInt64 = 0
            for version in versions.indices {
                let shift = Int(start / chunk)
                let objectOffset = versions.objectOffset(version)
                if axis == 0 {
                    // Along the leading axis a file's chunks are one run of the grid's row-major order.
                    let trailing = result.manifest.gridShape.dropFirst().reduce(1, *)
                    result.manifest.copyEntries(of: versions[version].manifest, to: shift * trailing, objectOffset: objectOffset)
                } else {
                    let manifest = versions[version].manifest
                    if let fill = manifest.fillChunk, fill != result.manifest.fillChunk {
                        throw CombineError.variableDisagrees(
                            variable: result.path, files: [versions.file(0), versions.file(version)],
                            detail:
                                "cannot concatenate variable \(result.path) along \(dimension): \(versions.file(version)) fills its unwritten chunks differently from \(versions.file(0))"
                        )
                    }
                    for linear in manifest.setIndices {
                        var coordinates = manifest.coordinates(linear)
                        coordinates[axis] += shift
                        if let target = result.manifest.linearIndex(coordinates) {
                            result.manifest[target] = manifest[linear].shiftingObject(by: objectOffset)
                        }
                    }
                }
                start += lengths[version]
            }
            return result
        }
        // netCDF's unlimited dimensions are often chunked far longer than each file's data
        // (1024 along time with one step written). Unfiltered, with the dimension leading, the
        // data is the first bytes of each chunk, so a shorter leading byte range is a valid chunk.
        let perFile = lengths[0]
        let oneChunkAlongAxis = versions.indices.allSatisfy { versions[$0].manifest.gridShape[axis] == 1 }
        if axis == 0, codecsEmpty, lengths.allSatisfy({ $0 == perFile }), perFile > 0, chunk > perFile, oneChunkAlongAxis {
            result.chunkShape[0] = perFile
            let rowBytes = result.chunkShape.dropFirst().reduce(UInt64(result.dtype.itemSize), *)
            result.manifest = try combinedManifest(
                result, dimension: dimension,
                fills: versions.indices.map { versions[$0].manifest.fillChunk.map { Array($0.prefix(Int(perFile * rowBytes))) } })
            for version in versions.indices {
                let manifest = versions[version].manifest
                let objectOffset = versions.objectOffset(version)
                for linear in manifest.setIndices {
                    var coordinates = manifest.coordinates(linear)
                    coordinates[0] = version
                    guard let target = result.manifest.linearIndex(coordinates) else { continue }
                    switch manifest[linear] {
                    case .reference(let object, let offset, _):
                        result.manifest[target] = .reference(object: object + objectOffset, offset: offset, length: perFile * rowBytes)
                    case .inline(let bytes):
                        result.manifest[target] = .inline(Array(bytes.prefix(Int(perFile * rowBytes))))
                    case .missing:
                        break
                    }
                }
            }
            return result
        }
        let detail = versions.indices.prefix(3).map {
            "\(versions.file($0)): \(lengths[$0]) along \(dimension) in chunks of \(versions[$0].chunkShape)"
        }
        throw CombineError.variableDisagrees(
            variable: result.path, files: [],
            detail:
                "cannot concatenate variable \(result.path) along \(dimension): chunks do not line up (\(detail.joined(separator: "; ")))\(codecsEmpty ? "" : "; compressed chunks cannot be cut"). Mount with --decoded to serve it on one grid, or leave the variable out with --drop-variables \(result.path)"
        )
    }

    /// Files' variable-length strings (each file's inline chunk) as one chunk of them all:
    /// strings have no fixed size, so the chunks cannot be joined by bytes as numbers are.
    static func concatenatedStrings(_ versions: ArrayVersions) throws -> [UInt8] {
        let chunks = versions.indices.map { version -> [UInt8] in
            if case .inline(let chunk) = versions[version].manifest[0] { return chunk }
            return []
        }
        let counts = versions.indices.map { CombineRules.valueCount(versions[$0]) ?? -1 }
        guard let joined = VLenUTF8.concatenated(chunks, counts: counts) else {
            throw CombineError.variableDisagrees(
                variable: versions[0].path, files: versions.indices.map { versions.file($0) },
                detail:
                    "variable \(versions[0].path): the files' strings do not match their shapes, so they cannot be concatenated. Leave it out with --drop-variables \(versions[0].path)"
            )
        }
        return joined
    }

    /// An inline array concatenated along its first axis (a coordinate, a time variable or a
    /// coordinate's bounds read with the scan): its CF time units may differ between files, as
    /// it is re-encoded.
    static func isInlineAlongFirstAxis(_ versions: ArrayVersions, axis: Int) -> Bool {
        axis == 0 && versions[0].codecs.isEmpty
            && versions.indices.allSatisfy({ versions[$0].manifest.count == 1 && isInline(versions[$0].manifest[0]) })
    }

    /// A bounds variable whose units a file's concat coordinate lent it.
    struct LentUnits: Hashable {
        var part: Int
        var path: String
    }

    /// CF 7.1: the concat coordinate's bounds (named by its `bounds` or `climatology`) share its
    /// units and calendar when they have none of their own. Each file's are lent to its bounds,
    /// so that files in other time units are re-encoded or refused like the coordinate, never
    /// concatenated as raw offsets from different instants; the combiner takes them back from
    /// the result.
    static func lendingCoordinateUnitsToBounds(
        _ parts: [(name: String, dataset: VirtualDataset)], dimension: String
    ) -> ([(name: String, dataset: VirtualDataset)], Set<LentUnits>) {
        var parts = parts
        var lent: Set<LentUnits> = []
        for index in parts.indices {
            guard let coordinate = parts[index].dataset.arrays.first(where: { $0.path == dimension && $0.dimensionNames == [dimension] }),
                let units = coordinate.attributes.first(where: { $0.0 == "units" })
            else { continue }
            for key in ["bounds", "climatology"] {
                guard let name = CombineRules.stringAttribute(coordinate, key),
                    let bounds = parts[index].dataset.arrays.firstIndex(where: { $0.path == name }),
                    parts[index].dataset.arrays[bounds].dimensionNames.first == dimension,
                    !parts[index].dataset.arrays[bounds].attributes.contains(where: { $0.0 == "units" })
                else { continue }
                parts[index].dataset.arrays[bounds].attributes.append(units)
                if let calendar = coordinate.attributes.first(where: { $0.0 == "calendar" }) {
                    parts[index].dataset.arrays[bounds].attributes.append(calendar)
                }
                lent.insert(LentUnits(part: index, path: name))
            }
        }
        return (parts, lent)
    }

    /// Refuses versions of a variable that encode their values differently, unless `unpack`
    /// asks for them to be unpacked per file: then returns each object's packing.
    static func checkEncoding(_ versions: ArrayVersions, axis: Int, unpack: Bool) throws -> Unpacking? {
        do {
            try CombineRules.checkSameEncoding(versions, reencodesUnits: isInlineAlongFirstAxis(versions, axis: axis))
            return nil
        } catch let error as CombineError {
            guard unpack, let unpacking = try CombineRules.perFileUnpacking(versions) else { throw error }
            return unpacking
        }
    }

    /// The versions as one array on one chunk grid, assembled when served, when their chunks
    /// cannot be joined as they are (shapes differ, lengths along the axis do not line up, or
    /// the files compress them differently), with the note that says so; nil when they can.
    static func regriddedIfMismatched(
        _ versions: ArrayVersions, axis: Int, dimension: String, chunks: [UInt64]?
    ) throws -> (array: VirtualArray, reason: String)? {
        let first = versions[0]
        // Inline arrays (decoded coordinates) join by their bytes whatever their lengths.
        if axis == 0, first.codecs.isEmpty, versions.indices.allSatisfy({ versions[$0].manifest.count == 1 && isInline(versions[$0].manifest[0]) }) {
            return nil
        }
        let lengths = versions.indices.map { versions[$0].shape[axis] }
        let sameChunks = versions.indices.allSatisfy { versions[$0].chunkShape == first.chunkShape }
        let aligned = lengths.dropLast().allSatisfy { first.chunkShape[axis] > 0 && $0 % first.chunkShape[axis] == 0 }
        let samePipeline = versions.indices.allSatisfy { versions[$0].codecs == first.codecs }
        let sameType = versions.indices.allSatisfy { versions[$0].dtype == first.dtype }
        if sameChunks && aligned && samePipeline && sameType { return nil }
        // Files that store the numbers in another byte order are served little-endian.
        let served = littleEndian(first.dtype)
        for version in versions.indices.dropFirst() {
            let other = versions[version]
            guard littleEndian(other.dtype) == served, other.dimensionNames == first.dimensionNames,
                zip(other.shape, first.shape).enumerated().allSatisfy({ $0.offset == axis || $0.element.0 == $0.element.1 })
            else {
                // The usual error says what differs.
                try checkCompatible(first, other, first: versions.file(0), other: versions.file(version), sameShape: true, axis: axis)
                return nil
            }
        }
        var sources: [Regridding.Source] = []
        var start: UInt64 = 0
        var shapes: [[UInt64]: Int] = [:]
        for version in versions.indices {
            let array = versions[version]
            if let foreign = Codec.foreign(in: array.codecs) {
                throw CombineError.variableDisagrees(
                    variable: array.path, files: [versions.file(0), versions.file(version)],
                    detail:
                        "variable \(array.path) is stored differently in \(versions.file(0)) and \(versions.file(version)) (chunks, compression or byte order), and zarrmount cannot decode its codec \(foreign) to serve it as one array. Leave it out with --drop-variables \(array.path)"
                )
            }
            var origin = [UInt64](repeating: 0, count: array.shape.count)
            origin[axis] = start
            let offset = versions.objectOffset(version)
            let swap = array.dtype == served ? nil : ByteSwap.littleEndianNumber(array.dtype)?.0
            var fill = array.fillBytes ?? [UInt8](repeating: 0, count: array.dtype.itemSize)
            swap?.apply(&fill)
            sources.append(
                Regridding.Source(
                    origin: origin, shape: array.shape, chunkShape: array.chunkShape, codecs: array.codecs,
                    manifest: array.manifest.remappingObjects { $0 + offset }, fillBytes: fill, byteSwap: swap))
            shapes[array.chunkShape, default: 0] += 1
            start += lengths[version]
        }
        // The most common chunk shape (the first file's among equals), unless one was asked for.
        let common = versions.indices.map { versions[$0].chunkShape }.max { shapes[$0]! < shapes[$1]! } ?? first.chunkShape
        var result = first
        result.shape[axis] = start
        result.chunkShape = try checkedChunks(chunks ?? common, for: result)
        result.codecs = []
        if let swap = sources[0].byteSwap, var fill = result.fillBytes {
            swap.apply(&fill)
            result.fillBytes = fill
        }
        result.dtype = served
        result.manifest = try combinedManifest(result, dimension: dimension, fills: [])
        result.regridding = Regridding(sources: sources, itemSize: first.dtype.itemSize)
        guard sameChunks && aligned else {
            return (
                result,
                "chunked differently by the files; served decoded in chunks of \(result.chunkShape), each assembled from the source chunks it overlaps"
            )
        }
        var reasons: [String] = []
        if let other = versions.indices.first(where: { versions[$0].codecs != first.codecs }) {
            reasons.append(
                "compressed differently by the files (\(Codec.describe(first.codecs)) in \(versions.file(0)); \(Codec.describe(versions[other].codecs)) in \(versions.file(other))); served decoded, each file's chunks with its own filters"
            )
        }
        if let big = versions.indices.first(where: { versions[$0].dtype.bigEndian }),
            let little = versions.indices.first(where: { !versions[$0].dtype.bigEndian })
        {
            reasons.append(
                "stored big-endian in \(versions.file(big)) but little-endian in \(versions.file(little)); served decoded as little-endian \(served.v2String)")
        }
        return (result, reasons.joined(separator: "; "))
    }

    /// The type a number is served as when files store it in both byte orders.
    public static func littleEndian(_ dtype: ZarrDataType) -> ZarrDataType {
        ByteSwap.littleEndianNumber(dtype)?.1 ?? dtype
    }

    /// `--chunks`: arrays served on the asked grid, assembled from their stored chunks.
    static func rechunk(_ dataset: inout VirtualDataset, chunks: [String: [UInt64]]) throws {
        for (path, shape) in chunks.sorted(by: { $0.key < $1.key }) {
            guard let index = dataset.arrays.firstIndex(where: { $0.path == path }) else {
                let all = dataset.arrays.map(\.path)
                throw CombineError.invalidOption(
                    option: "--chunks",
                    detail: "--chunks \(path): no variable \(path)\(CombineRules.closest(path, among: all).map { "; did you mean \($0)?" } ?? "")")
            }
            let array = dataset.arrays[index]
            guard array.regridding == nil else { continue }
            if let foreign = Codec.foreign(in: array.codecs) {
                throw CombineError.invalidOption(
                    option: "--chunks", detail: "--chunks \(path): zarrmount cannot decode its codec \(foreign) to serve it on another grid")
            }
            if array.dtype.kind == .variableString {
                throw CombineError.invalidOption(option: "--chunks", detail: "--chunks \(path): variable-length strings cannot be re-chunked")
            }
            var served = array
            served.chunkShape = try checkedChunks(shape, for: array)
            served.codecs = []
            served.manifest = try combinedManifest(served, dimension: "--chunks", fills: [])
            served.regridding = Regridding(
                sources: [
                    Regridding.Source(
                        origin: array.shape.map { _ in 0 }, shape: array.shape, chunkShape: array.chunkShape,
                        codecs: array.codecs, manifest: array.manifest,
                        fillBytes: array.fillBytes ?? [UInt8](repeating: 0, count: array.dtype.itemSize))
                ],
                itemSize: array.dtype.itemSize)
            if let unpacking = array.unpacking {
                served.regridding = try unpackedRegridding(served.regridding!, unpacking, path: path)
                served.unpacking = nil
                served.setUnpackedType()
            }
            dataset.arrays[index] = served
        }
    }

    static func unpackedRegridding(_ regridding: Regridding, _ unpacking: Unpacking, path: String) throws -> Regridding {
        do { return try regridding.unpacked(unpacking, path: path) } catch let error as CodecError {
            throw CombineError.codec(error)
        }
    }

    /// A served chunk shape: one positive extent per axis, and at most 256 MiB a chunk.
    static func checkedChunks(_ shape: [UInt64], for array: VirtualArray) throws -> [UInt64] {
        guard shape.count == array.shape.count, shape.allSatisfy({ $0 > 0 }) else {
            throw CombineError.invalidOption(
                option: "--chunks",
                detail:
                    "--chunks \(array.path)=\(shape.map(String.init).joined(separator: ",")): give one positive extent for each of its \(array.shape.count) dimensions (\(array.dimensionNames.joined(separator: ", ")))"
            )
        }
        var bytes: UInt64? = UInt64(array.dtype.itemSize)
        for extent in shape { bytes = bytes.flatMap { total in total.multipliedReportingOverflow(by: extent).overflow ? nil : total * extent } }
        guard let bytes, bytes <= 256 << 20 else {
            throw CombineError.invalidOption(
                option: "--chunks",
                detail: "--chunks \(array.path)=\(shape.map(String.init).joined(separator: ",")): a chunk would hold more than 256 MiB; choose a smaller shape")
        }
        return shape
    }

    static func isInline(_ entry: ChunkEntry) -> Bool {
        if case .inline = entry { return true }
        return false
    }

    /// The concat coordinate must increase across files: files ordered by it that overlap are
    /// an error (the axis would repeat instants), and so are files in name order that repeat an
    /// instant of an earlier file (a day downloaded twice); files in name order that merely do
    /// not increase get a note suggesting `--order coordinate`.
    static func checkIncreasing(_ array: VirtualArray, versions: ArrayVersions, strictly: Bool, notes: inout [String]) throws {
        guard array.manifest.count == 1, case .inline(let bytes) = array.manifest[0],
            let values = NumericValues.doubles(bytes, dtype: array.dtype, count: Int(array.shape[0]))
        else { return }
        if !strictly { try checkNoInstantRepeats(array, values: values, versions: versions) }
        var end = 0
        for version in versions.indices {
            let start = end
            end += Int(versions[version].shape[0])
            guard version > 0, start > 0, start < values.count, values[start] <= values[start - 1] else { continue }
            let previous = versions.file(version - 1), this = versions.file(version)
            if strictly {
                throw CombineError.coordinateConflict(
                    coordinate: array.path, files: [previous, this],
                    detail:
                        "\(array.path) does not increase from \(previous) to \(this) (\(formatValue(values[start - 1])) then \(formatValue(values[start]))): the files overlap or repeat instants, so the combined axis would repeat them. Leave the duplicate files out; stack overlapping forecast runs along a new dimension (--stack-dim run --stack-regex PATTERN) or mount them separately (--layout per_file)"
                )
            }
            notes.append(
                "\(array.path) does not increase from \(previous) to \(this) (\(formatValue(values[start - 1])) then \(formatValue(values[start]))); files are combined in name order; use --order coordinate to order them by \(array.path)"
            )
            return
        }
    }

    /// Stops when a file's concat coordinate holds an instant an earlier file already holds: the
    /// combined axis would hold it twice, each with its own values. Fill values (instants never
    /// written) are not instants.
    static func checkNoInstantRepeats(_ array: VirtualArray, values: [Double], versions: ArrayVersions) throws {
        let missing = Set(CombineRules.missingMarkers(array))
        let keys = values.map { $0.isNaN || missing.contains($0) ? nil : $0 }
        guard let found = firstRepeat(keys, lengths: versions.indices.map { Int(versions[$0].shape[0]) }) else { return }
        let units = CombineRules.stringAttribute(array, "units").map { " \($0)" } ?? ""
        throw repeatedInstant("\(array.path) \(formatValue(values[found.position]))\(units)", of: array.path, found, versions)
    }

    /// `checkNoInstantRepeats` and `checkIncreasing` for WRF files, which name their instants
    /// only in `Times` (the combined array, inline): a row of characters that an earlier file
    /// holds too is an error; a file whose first row is not after the previous file's last is
    /// a note in name order (the data would be out of time order with nothing else to say so),
    /// an error when ordered by coordinate.
    static func checkTimes(_ times: VirtualArray, versions: ArrayVersions, strictly: Bool, notes: inout [String]) throws {
        guard let keys = WRFTimes.rows(times) else { return }
        let lengths = versions.indices.map { Int(versions[$0].shape[0]) }
        if let found = firstRepeat(keys, lengths: lengths) {
            throw repeatedInstant("Times \(WRFTimes.text(keys[found.position]!))", of: times.path, found, versions)
        }
        var end = 0
        var lastRow: (row: ArraySlice<UInt8>, version: Int)?
        for version in versions.indices {
            let own = min(end, keys.count)..<min(end + lengths[version], keys.count)
            end += lengths[version]
            let rows = own.compactMap { keys[$0] }
            guard let first = rows.first, let last = rows.last else { continue }
            if let previous = lastRow, !previous.row.lexicographicallyPrecedes(first) {
                let (before, this) = (versions.file(previous.version), versions.file(version))
                let detail = "Times does not increase from \(before) to \(this) (\(WRFTimes.text(previous.row)) then \(WRFTimes.text(first)))"
                if strictly {
                    throw CombineError.coordinateConflict(
                        coordinate: times.path, files: [before, this],
                        detail: "\(detail): the files overlap. Leave the duplicate files out, or mount them separately (--layout per_file)")
                }
                notes.append(
                    "\(detail); files are combined in name order, so the data along \(times.dimensionNames.first ?? "Time") is out of time order; use --order coordinate to order them by Times"
                )
                return
            }
            lastRow = (last, version)
        }
    }

    /// The first key that a file shares with an earlier file, where files hold `lengths` keys
    /// each in turn: its position and both files. Nil keys (fill values, blank rows) never match.
    static func firstRepeat<Key: Hashable>(_ keys: [Key?], lengths: [Int]) -> (position: Int, earlier: Int, version: Int)? {
        var holder: [Key: Int] = [:]
        var end = 0
        for (version, length) in lengths.enumerated() {
            let own = min(end, keys.count)..<min(end + length, keys.count)
            end += length
            for position in own {
                if let key = keys[position], let earlier = holder[key] { return (position, earlier, version) }
            }
            for position in own {
                if let key = keys[position], holder[key] == nil { holder[key] = version }
            }
        }
        return nil
    }

    static func repeatedInstant(
        _ instant: String, of coordinate: String, _ found: (position: Int, earlier: Int, version: Int), _ versions: ArrayVersions
    ) -> CombineError {
        let (earlier, this) = (versions.file(found.earlier), versions.file(found.version))
        return CombineError.coordinateConflict(
            coordinate: coordinate, files: [earlier, this],
            detail:
                "\(instant) is in both \(earlier) and \(this): the files overlap or one repeats the other, so the combined axis would hold that instant twice. Leave the duplicate files out; stack overlapping forecast runs along a new dimension (--stack-dim run --stack-regex PATTERN) or mount them separately (--layout per_file)"
        )
    }

    static func formatValue(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// The empty manifest of a combined array, refusing grids beyond what a manifest indexes. When
/// every file fills its unwritten chunks with the same chunk, so does the result; files that
/// fill them differently are materialised per chunk by `copyEntries`.
func combinedManifest(_ array: VirtualArray, dimension: String, fills: [[UInt8]?]) throws -> ChunkManifest {
    let gridShape = ChunkManifest.grid(array.shape, array.chunkShape)
    guard ChunkManifest.chunkCount(gridShape) != nil else {
        throw CombineError.gridTooLarge(variable: array.path, dimension: dimension, gridShape: gridShape, maxChunks: ChunkManifest.maxChunks)
    }
    var manifest = ChunkManifest(gridShape: gridShape)
    if let first = fills.first, let fill = first, fills.allSatisfy({ $0 == fill }) { manifest.fillMissing(with: fill) }
    return manifest
}
