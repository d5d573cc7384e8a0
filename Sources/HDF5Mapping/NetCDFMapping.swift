import Foundation
import HDF5Metadata
import JSONValue
import VirtualZarr

/// HDF5 → Zarr with netCDF-4 semantics: dimension names from dimension scales, netCDF's
/// bookkeeping attributes hidden, `_FillValue` as Zarr's fill value.
public enum NetCDFMapping {
    /// netCDF's bookkeeping attributes and the names netCDF-C reserves and hides from readers
    /// (case-sensitive: the old upper-case `_NCPROPERTIES` is not reserved, and netCDF-C shows it).
    /// A file's own `_ARRAY_DIMENSIONS` would also clobber Zarr v2's dimension names.
    static let hiddenAttributes: Set<String> = [
        "DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid", "_Netcdf4Coordinates",
        "_NCProperties", "_nc3_strict", "_FillValue",
        "_Format", "_IsNetcdf4", "_SuperblockVersion", "_Codecs", "_ARRAY_DIMENSIONS", "_nczarr_attr",
    ]
    /// The attribute that keeps an enum variable's names and values.
    public static let enumAttribute = VirtualArray.enumNamesAttribute
    static let dimensionOnlyPrefix = "This is a netCDF dimension but not a netCDF variable"

    public static func dataset(
        from info: HDF5FileInfo, objectID: UInt32, options: MappingOptions = MappingOptions(),
        fetch: @escaping ByteFetcher
    ) async throws -> VirtualDataset {
        var result = VirtualDataset()
        let externalFiles = ExternalObjectNames(firstID: objectID + 1)
        let namedTypes = namedTypeSignatures(info)
        let scales = DimensionScales(info)
        let lengths = dimensionLengths(info, scales: scales)
        let (phony, datasetPaths, groupPaths) = phonyDimensionNames(info, lengths: lengths, scales: scales)
        // Every name that reaches a group or dataset (soft links, second hard links) is one of
        // its own, as netCDF-C lists them; the name the parser found first leads.
        func names(_ canonical: String, _ found: [String]?) -> [String] {
            var seen: Set<String> = [canonical]
            return [canonical] + (found ?? []).filter { seen.insert($0).inserted }
        }
        // VirtualDataset() starts with an empty root group, which the file's own replaces.
        result.groups = []
        for group in info.groups {
            let groupAttributes = attributes(group.attributes, resolve: info.pathsByAddress, namedTypes: namedTypes)
            for path in names(group.path, groupPaths[group.address]) {
                result.groups.append(VirtualGroup(path: zarrPath(path), attributes: groupAttributes))
            }
        }
        if result.groups.first(where: { $0.path.isEmpty }) == nil {
            result.groups.insert(VirtualGroup(path: "", attributes: []), at: 0)
        }
        // netCDF-C follows an external link into the other file; a mount serves the files it
        // was given and nothing they point to (a link may name any path on the machine), so
        // what the link reaches is left out, and said.
        for group in info.groups {
            for link in group.links {
                guard case .external(let file, let target) = link.target else { continue }
                let path = group.path == "/" ? "/" + link.name : group.path + "/" + link.name
                result.warnings.append(
                    "\(info.name): \(path) left out: an external link to \(target) in \(file), which zarrmount does not follow; scan \(file) itself to serve it (netCDF-C numbers the phony_dim_N of what it reaches, so later phony dimension numbers can differ from netCDF-C's)"
                )
            }
        }
        for dataset in info.datasets where dataset.path.lastIndex(of: "/") == dataset.path.startIndex {
            if let space = dataset.dataspace, space.maxDimensions.count == 1, space.maxDimensions[0] == nil,
                isDimensionScale(dataset.attributes)
            {
                result.unlimitedDimensions.append(String(dataset.path.dropFirst()))
            }
        }
        // The concat coordinate's attributes, once per file: its bounds share its units.
        let concatCoordinate = options.timeVariablesAlong.flatMap { along in info.datasets.first { $0.path == "/" + along } }.map {
            attributes($0.attributes, resolve: info.pathsByAddress, namedTypes: namedTypes)
        }
        for dataset in info.datasets {
            if let error = dataset.error {
                // A feature we do not handle leaves the variable out; a damaged file is an error,
                // never a dataset with silently missing variables.
                guard error.kind == .unsupported else {
                    throw MappingError.damagedVariable(file: info.name, path: dataset.path, reason: "\(error)")
                }
                result.warnings.append("\(info.name): \(dataset.path) left out: \(error)")
                continue
            }
            if isDimensionOnly(dataset) { continue }
            for path in names(dataset.path, datasetPaths[dataset.address]) {
                var named = dataset
                named.path = path
                do {
                    if let array = try await array(
                        named, info: info, objectID: objectID, options: options, lengths: lengths,
                        phony: phony, scales: scales, externalFiles: externalFiles, concatCoordinate: concatCoordinate, fetch: fetch)
                    {
                        result.arrays.append(array)
                    }
                } catch let error as MappingError {
                    result.warnings.append("\(info.name): \(path) left out: \(error)")
                } catch let error as CodecError {
                    result.warnings.append("\(info.name): \(path) left out: \(error)")
                }
            }
        }
        if !externalFiles.names.isEmpty {
            // Objects up to `objectID` are the file's own (the caller lists them); the external
            // files follow under their names as written, for the caller to resolve and confine.
            result.objects =
                [ObjectInfo](repeating: ObjectInfo(url: info.name, size: 0), count: Int(objectID) + 1)
                + externalFiles.names.map { ObjectInfo(url: $0, size: 0) }
        }
        return result
    }

    static func zarrPath(_ hdf5Path: String) -> String {
        String(hdf5Path.drop { $0 == "/" })
    }

    /// netCDF-C's prefix for a variable that shares its name with a dimension it does not
    /// stand for (`y(x, y)` beside the dimension `y`): the dataset is `_nc4_non_coord_y`, the
    /// variable `y`.
    static let nonCoordinatePrefix = "_nc4_non_coord_"

    /// A dataset's variable path as netCDF-C names it.
    static func variablePath(_ hdf5Path: String) -> String {
        let path = zarrPath(hdf5Path)
        let nameStart = path.lastIndex(of: "/").map(path.index(after:)) ?? path.startIndex
        guard path[nameStart...].hasPrefix(nonCoordinatePrefix), path[nameStart...].count > nonCoordinatePrefix.count else { return path }
        return String(path[..<nameStart]) + String(path[nameStart...].dropFirst(nonCoordinatePrefix.count))
    }

    static func isDimensionOnly(_ dataset: DatasetInfo) -> Bool {
        guard let name = dataset.attributes.first(where: { $0.name == "NAME" }), case .string(let text)? = name.values.first else {
            return false
        }
        return text.hasPrefix(dimensionOnlyPrefix)
    }

    /// netCDF-C's names for the dimensions of datasets without dimension scales: after every
    /// real dimension has its id, it walks the groups depth-first, children before their parent
    /// (links in creation order when tracked, else by name), and gives each such dataset's axes the first dimension of the same
    /// group with the same length and unlimitedness not yet used by that dataset, or a new
    /// `phony_dim_<next id>`.
    static func phonyDimensionNames(
        _ info: HDF5FileInfo, lengths: [UInt64: UInt64], scales: DimensionScales
    )
        -> (names: [String: [String]], paths: [UInt64: [String]], groupPaths: [UInt64: [String]])
    {
        // Positions, not copies: a dataset's description holds a dozen references, and this runs
        // for every file of an archive.
        let datasetIndex = Dictionary(info.datasets.indices.map { (info.datasets[$0].address, $0) }, uniquingKeysWith: { a, _ in a })
        let groupIndex = Dictionary(info.groups.indices.map { (info.groups[$0].address, $0) }, uniquingKeysWith: { a, _ in a })
        var addressByPath: [String: UInt64] = [:]
        for (address, path) in info.pathsByAddress { addressByPath[path] = address }
        for group in info.groups { for alias in group.aliases { addressByPath[alias] = group.address } }
        for dataset in info.datasets { for alias in dataset.aliases { addressByPath[alias] = dataset.address } }
        let scaleCount = scales.dimensionScaleCount
        var nextID = scaleCount
        var result: [String: [String]] = [:]
        var paths: [UInt64: [String]] = [:]
        var groupPaths: [UInt64: [String]] = [:]
        var visits = 0

        func ordered(_ links: [Link]) -> [Link] {
            if !links.isEmpty, links.allSatisfy({ $0.creationOrder != nil }) {
                return links.sorted { $0.creationOrder! < $1.creationOrder! }
            }
            return links.sorted { $0.name < $1.name }
        }
        /// The object a link names: hard links directly, soft links by following the path they
        /// hold link by link (from the root, or from the group holding the link).
        func target(_ link: Link, in group: GroupInfo, path groupPath: String, depth: Int = 0) -> UInt64? {
            switch link.target {
            case .hard(let address): return address
            case .soft(let path):
                guard depth < 16 else { return nil }
                if path.split(separator: "/").contains("..") {
                    var parts: [Substring] = path.hasPrefix("/") ? [] : groupPath.split(separator: "/")
                    for part in path.split(separator: "/") where part != "." {
                        if part == ".." { if !parts.isEmpty { parts.removeLast() } } else { parts.append(part) }
                    }
                    return addressByPath["/" + parts.joined(separator: "/")]
                }
                guard var current: GroupInfo = path.hasPrefix("/") ? info.groups.first(where: { $0.path == "/" }) : group else { return nil }
                var currentPath = path.hasPrefix("/") ? "/" : groupPath
                var address = current.address
                let parts = path.split(separator: "/").filter { $0 != "." }
                for (i, part) in parts.enumerated() {
                    guard let next = current.links.first(where: { $0.name == part }),
                        let found = target(next, in: current, path: currentPath, depth: depth + 1)
                    else { return nil }
                    address = found
                    if i < parts.count - 1 {
                        guard let index = groupIndex[found] else { return nil }
                        current = info.groups[index]
                        currentPath = currentPath == "/" ? "/" + part : currentPath + "/" + part
                    }
                }
                return address
            default: return nil
            }
        }

        // netCDF-C walks every name that reaches a group or dataset (soft links and second hard
        // links too): each is a variable or group of its own, and each group has its own dimensions.
        func visit(_ group: GroupInfo, path: String, ancestors: Set<UInt64>) {
            visits += 1
            guard visits <= 100_000 else { return }
            groupPaths[group.address, default: []].append(path)
            let links = ordered(group.links)
            let prefix = path == "/" ? "/" : path + "/"
            // netCDF-C matches child groups first (post-order).
            for link in links {
                if let address = target(link, in: group, path: path), let child = groupIndex[address], !ancestors.contains(address), ancestors.count < 64 {
                    visit(info.groups[child], path: prefix + link.name, ancestors: ancestors.union([address]))
                }
            }
            // (length, unlimited, name) of this group's dimensions, real ones first.
            var dims: [(UInt64, Bool, String)] = []
            for link in links {
                guard case .hard(let address) = link.target, scales.isDimensionScale(address), let index = datasetIndex[address],
                    let space = info.datasets[index].dataspace, space.dimensions.count == 1
                else { continue }
                dims.append((lengths[address] ?? space.dimensions[0], space.maxDimensions.first == .some(nil), link.name))
            }
            for link in links {
                guard let address = target(link, in: group, path: path), let index = datasetIndex[address] else { continue }
                let datasetPath = prefix + link.name
                paths[address, default: []].append(datasetPath)
                guard let space = info.datasets[index].dataspace, space.kind == .simple, !space.dimensions.isEmpty,
                    scales[address] == nil
                else { continue }
                // netCDF-C skips datasets of types it cannot read (array types outside a compound,
                // references) before it names their dimensions, so they take no number.
                if let type = info.datasets[index].datatype, !netCDFReads(type) { continue }
                var names: [String] = []
                for (length, max) in zip(space.dimensions, space.maxDimensions) {
                    let unlimited = max == nil
                    if let match = dims.first(where: { $0.0 == length && $0.1 == unlimited && !names.contains($0.2) }) {
                        names.append(match.2)
                    } else {
                        let name = "phony_dim_\(nextID)"
                        nextID += 1
                        dims.append((length, unlimited, name))
                        names.append(name)
                    }
                }
                result[datasetPath] = names
            }
        }
        if let root = info.groups.first(where: { $0.path == "/" }) { visit(root, path: "/", ancestors: [root.address]) }
        return (result, paths, groupPaths)
    }

    /// Whether netCDF-C reads a dataset of this type (and so numbers its phony dimensions).
    static func netCDFReads(_ type: Datatype) -> Bool {
        switch type {
        case .array, .reference, .time, .bitfield: return false
        default: return true
        }
    }

    static func isDimensionScale(_ attributes: [Attribute]) -> Bool {
        attributes.contains { $0.name == "CLASS" && $0.values.first == .string("DIMENSION_SCALE") }
    }

    static func array(
        _ dataset: DatasetInfo, info: HDF5FileInfo, objectID: UInt32, options: MappingOptions,
        lengths: [UInt64: UInt64], phony: [String: [String]], scales: DimensionScales,
        externalFiles: ExternalObjectNames, concatCoordinate: [(String, JSON)]? = nil, fetch: @escaping ByteFetcher
    ) async throws -> VirtualArray? {
        guard let datatype = dataset.datatype, let dataspace = dataset.dataspace, let layout = dataset.layout else {
            throw MappingError.unsupportedLayout("incomplete metadata")
        }
        if dataspace.kind == .null { throw MappingError.unsupportedLayout("null dataspace (no values)") }
        let dtype = try zarrType(datatype)
        var shape = dataspace.kind == .scalar ? [] : dataspace.dimensions
        // netCDF gives every variable on an unlimited dimension that dimension's full length;
        // rows a variable never wrote read as its fill value.
        if let axes = scales[dataset.address] {
            for (axis, scale) in axes.enumerated() { shape[axis] = max(shape[axis], lengths[scale] ?? 0) }
        }
        let path = variablePath(dataset.path)
        let dimensions = try dimensionNames(dataset, shape: shape, info: info, phony: phony, scales: scales)
        let codecs = try pipeline(dataset.filters, datatype: datatype)
        // The n-bit decoder converts values to the native type; nothing else does.
        let converter = codecs.lazy.compactMap { codec -> HDF5Filter? in
            if case .hdf5(let filter) = codec, filter.kind == .nbit { return filter }
            return nil
        }.first
        if converter == nil, let misread = misreadContainer(datatype) {
            throw MappingError.unsupportedType("\(misread), which Zarr readers would take as whole containers; libhdf5 converts them")
        }

        var attributeList = attributes(dataset.attributes, resolve: info.pathsByAddress, namedTypes: namedTypeSignatures(info))
        if case .enumeration(_, let base, let names, let values) = datatype {
            // The enum's names and values, in an attribute xarray's Zarr backend hides (`_nc*`),
            // as netCDF-C's reader keeps them out of the attributes: {"name": value, ...}.
            let members = zip(names, values).map { ($0, scalarJSON(base.number($1[...]))) }
            attributeList.removeAll { $0.0 == enumAttribute }
            attributeList.append((enumAttribute, .object(members)))
        }
        let cfFill = dataset.attributes.first { $0.name == "_FillValue" }
        var hdf5Fill = dataset.fillValue.bytes ?? [UInt8](repeating: 0, count: dtype.itemSize)
        if let converter, let converted = converter.nativeFill(hdf5Fill) { hdf5Fill = converted }
        var array = VirtualArray(
            path: path, dtype: dtype, shape: shape, chunkShape: [], codecs: codecs,
            fillValue: cfFill.map { fillJSON($0.raw, datatype: $0.datatype) } ?? .null,
            fillBytes: hdf5Fill, dimensionNames: dimensions, attributes: attributeList,
            manifest: ChunkManifest(gridShape: []), origin: info.name)

        switch layout {
        case .chunked(let chunked):
            array.chunkShape = chunked.chunkShape
            array.manifest = try manifest(shape, chunked.chunkShape)
            var masks: [Int: UInt32] = [:]
            if let table = dataset.chunks {
                array.manifest.reserve(setEntries: table.count)
                for i in 0..<table.count {
                    guard let linear = array.manifest.linearIndex(table.coordinates(of: i)) else { continue }
                    if table.filterMasks[i] != 0 { masks[linear] = table.filterMasks[i] }
                    array.manifest[linear] = .reference(object: objectID, offset: table.offsets[i], length: table.sizes[i])
                }
            }
            if !masks.isEmpty {
                // Zarr has one pipeline per array; chunks that skipped filters are decoded one
                // by one and the (small) array is kept decoded and inline.
                let decodedSize = shape.reduce(UInt64(dtype.itemSize), *)
                guard decodedSize <= UInt64(options.maxDecodedInlineBytes) else {
                    throw MappingError.mixedFilterMasks(chunks: masks.count, mask: masks.values.first!, decodedBytes: decodedSize)
                }
                array = try await ArrayValues.inlined(array, fetch: fetch, maxBytes: options.maxDecodedInlineBytes, masks: masks)
            }
        case .contiguous where !dataset.externalFiles.isEmpty:
            // The segments are in the order of the dataspace's bytes; a netCDF dimension grown
            // past them has rows no segment holds.
            guard shape == dataspace.dimensions || dataspace.kind == .scalar else {
                throw MappingError.externalData("the variable is longer (\(shape)) than its stored data (\(dataspace.dimensions))")
            }
            let split = ContiguousSplit.chunkShape(
                shape: shape, itemSize: UInt64(dtype.itemSize), threshold: options.contiguousSplitThreshold)
            let (chunkShape, pieces) = try ExternalData.layout(
                shape: shape, itemSize: UInt64(dtype.itemSize), segments: dataset.externalFiles, splitRows: split.first)
            array.chunkShape = chunkShape
            array.manifest = try manifest(shape, chunkShape)
            for (linear, piece) in pieces.enumerated() where linear < array.manifest.count {
                array.manifest[linear] = .reference(
                    object: try externalFiles.id(for: dataset.externalFiles[piece.segment].name), offset: piece.offset,
                    length: piece.length)
            }
        case .contiguous(_, let size):
            let stored = dataset.chunks.flatMap { $0.count > 0 ? ($0.offsets[0], $0.sizes[0]) : nil }
            let chunkShape = ContiguousSplit.chunkShape(
                shape: shape, itemSize: UInt64(dtype.itemSize), threshold: options.contiguousSplitThreshold,
                filtered: !codecs.isEmpty)
            array.chunkShape = chunkShape
            array.manifest = try manifest(shape, chunkShape)
            if let (offset, _) = stored {
                let rowMajorChunkBytes = chunkShape.reduce(UInt64(dtype.itemSize), *)
                if array.manifest.count == 1 {
                    array.manifest[0] = .reference(object: objectID, offset: offset, length: size)
                } else {
                    // Chunks of a split contiguous array are consecutive byte ranges because the
                    // grid only divides leading axes.
                    for linear in 0..<array.manifest.count {
                        array.manifest[linear] = .reference(
                            object: objectID, offset: offset + UInt64(linear) * rowMajorChunkBytes,
                            length: rowMajorChunkBytes)
                    }
                }
            }
        case .compact(let bytes):
            array.chunkShape = shape.map { max($0, 1) }
            array.manifest = try manifest(shape, array.chunkShape)
            // Compact data lives in the object header (64 KiB at most): a shape that needs more
            // than that is a damaged or hostile header, not a reason to allocate.
            var needed: UInt64? = UInt64(dtype.itemSize)
            for extent in array.chunkShape {
                needed = needed.flatMap { total in
                    let (product, overflow) = total.multipliedReportingOverflow(by: extent)
                    return overflow ? nil : product
                }
            }
            guard let needed, needed <= max(UInt64(bytes.count), 64 << 10) else {
                throw MappingError.shortCompactData(bytes: bytes.count, shape: shape, itemSize: dtype.itemSize)
            }
            if array.manifest.count == 1 { array.manifest[0] = .inline(padded(bytes, to: Int(needed))) }
        case .virtual:
            throw MappingError.unsupportedLayout("virtual dataset layout")
        }
        if dtype.kind == .variableString {
            return try await inlineStrings(array, dataset: dataset, info: info, fetch: fetch, options: options)
        }
        let time = options.timeUnits(name: path, own: array.attributes, coordinate: concatCoordinate)
        if options.inlineVariables.contains(array.name) {
            array = try await ArrayValues.inlined(array, fetch: fetch, maxBytes: options.maxInlineBytes)
        } else if let limit = options.comparedValuesLimit(
            name: path, dimensions: dimensions, dtype: dtype, shape: shape, units: time.units, isConcatBounds: time.isConcatBounds)
        {
            array = try await ArrayValues.inlined(array, fetch: fetch, maxBytes: limit)
        }
        try fillMissingChunks(&array, hdf5Fill: hdf5Fill)
        return array
    }

    static func grid(_ shape: [UInt64], _ chunks: [UInt64]) -> [Int] { ChunkManifest.grid(shape, chunks) }

    static func manifest(_ shape: [UInt64], _ chunks: [UInt64]) throws -> ChunkManifest { try ChunkManifest.empty(shape: shape, chunks: chunks) }

    static func padded(_ bytes: [UInt8], to count: Int) -> [UInt8] {
        bytes.count >= count ? bytes : bytes + [UInt8](repeating: 0, count: count - bytes.count)
    }

    /// netCDF-4's dimension scales, resolved through `DIMENSION_LIST` object references.
    static func dimensionNames(
        _ dataset: DatasetInfo, shape: [UInt64], info: HDF5FileInfo, phony: [String: [String]],
        scales: DimensionScales
    ) throws -> [String] {
        if shape.isEmpty { return [] }
        if let axes = scales[dataset.address] {
            return try axes.map { address in
                guard let path = info.pathsByAddress[address] else {
                    throw MappingError.dimensionNames("DIMENSION_LIST names an object that is not in the file")
                }
                return String(path[(path.lastIndex(of: "/").map(path.index(after:)) ?? path.startIndex)...])
            }
        }
        guard let names = phony[dataset.path], names.count == shape.count else {
            throw MappingError.dimensionNames("no dimension names")
        }
        return names
    }

    /// An integer attribute's values (`_Netcdf4Dimid`, `_Netcdf4Coordinates`).
    static func integers(_ attributes: [Attribute], _ name: String) -> [Int64]? {
        guard let index = attributes.firstIndex(where: { $0.name == name }) else { return nil }
        var result: [Int64] = []
        for value in attributes[index].values {
            switch value {
            case .integer(let v): result.append(v)
            case .unsigned(let v) where v <= UInt64(Int64.max): result.append(Int64(v))
            default: return nil
            }
        }
        return result
    }

    /// The dimension scale (by address) of each axis, from `DIMENSION_LIST`, or the dataset
    /// itself for a 1-D coordinate variable.
    static func dimensionScales(attributes: [Attribute], address: UInt64, rank: Int) -> [UInt64]? {
        // By position: a copy of the attribute would retain every field.
        if let list = attributes.firstIndex(where: { $0.name == "DIMENSION_LIST" }) {
            let values = attributes[list].values
            var scales: [UInt64] = []
            scales.reserveCapacity(values.count)
            for entry in values {
                // With several scales attached to one axis, netCDF-C's H5DSiterate_scales
                // visitor keeps the last.
                guard case .list(let refs) = entry, case .objectReference(let address)? = refs.last else { return nil }
                scales.append(address)
            }
            return scales.count == rank ? scales : nil
        }
        return isDimensionScale(attributes) && rank == 1 ? [address] : nil
    }

    /// Each dimension's length: the longest extent along it of any variable (netCDF's rule
    /// for unlimited dimensions; fixed ones agree anyway).
    static func dimensionLengths(_ info: HDF5FileInfo, scales: DimensionScales) -> [UInt64: UInt64] {
        var lengths: [UInt64: UInt64] = [:]
        for index in info.datasets.indices {
            guard let space = info.datasets[index].dataspace, space.kind == .simple,
                let axes = scales[info.datasets[index].address]
            else { continue }
            for (axis, scale) in axes.enumerated() { lengths[scale] = max(lengths[scale] ?? 0, space.dimensions[axis]) }
        }
        return lengths
    }

    /// Every dataset's dimension scales and which datasets are scales, worked out once per file
    /// (dimension lengths, phony names and each variable's names all ask).
    struct DimensionScales {
        private var axesByAddress: [UInt64: [UInt64]] = [:]
        private var scaleAddresses: Set<UInt64> = []

        init(_ info: HDF5FileInfo) {
            // Field by field: handing a dataset's description to a function copies it, retaining
            // every field.
            var scaleByDimensionID: [Int64: UInt64] = [:]
            for index in info.datasets.indices {
                let attributes = info.datasets[index].attributes
                let address = info.datasets[index].address
                if NetCDFMapping.isDimensionScale(attributes) {
                    scaleAddresses.insert(address)
                    if let id = NetCDFMapping.integers(attributes, "_Netcdf4Dimid")?.first { scaleByDimensionID[id] = address }
                }
                guard let space = info.datasets[index].dataspace, space.kind != .null else { continue }
                let rank = space.kind == .scalar ? 0 : space.dimensions.count
                if let axes = NetCDFMapping.dimensionScales(attributes: attributes, address: address, rank: rank) { axesByAddress[address] = axes }
            }
            // A coordinate variable of several dimensions (a char coordinate `z(z, string3)`) is
            // a dimension scale, which HDF5 lets carry no DIMENSION_LIST: netCDF-C names its
            // axes by the dimension ids in `_Netcdf4Coordinates`.
            for index in info.datasets.indices where scaleAddresses.contains(info.datasets[index].address) {
                let address = info.datasets[index].address
                guard axesByAddress[address] == nil, let space = info.datasets[index].dataspace, space.kind == .simple,
                    space.dimensions.count > 1,
                    let ids = NetCDFMapping.integers(info.datasets[index].attributes, "_Netcdf4Coordinates"),
                    ids.count == space.dimensions.count
                else { continue }
                let axes = ids.enumerated().map { axis, id in axis == 0 ? address : scaleByDimensionID[id] }
                if axes.allSatisfy({ $0 != nil }) { axesByAddress[address] = axes.map { $0! } }
            }
        }

        /// The dimension scale (by address) of each axis of the dataset at `address`.
        subscript(address: UInt64) -> [UInt64]? { axesByAddress[address] }

        func isDimensionScale(_ address: UInt64) -> Bool { scaleAddresses.contains(address) }

        var dimensionScaleCount: Int { scaleAddresses.count }
    }

    static func zarrType(_ type: Datatype) throws -> ZarrDataType {
        switch type {
        case .integer(let size, let order, let signed, _, _):
            guard [1, 2, 4, 8].contains(size) else { throw MappingError.unsupportedType("\(size)-byte integers") }
            return .integer(size: size, signed: signed, bigEndian: order == .bigEndian)
        case .float(let size, let order, _, _, _):
            guard [2, 4, 8].contains(size) else { throw MappingError.unsupportedType("\(size)-byte floats") }
            return .float(size: size, bigEndian: order == .bigEndian)
        case .enumeration(_, let base, _, _):
            return try zarrType(base)
        case .string(let size, _, _):
            return .fixedBytes(size)
        case .variableLengthString:
            return .variableString
        case .opaque(let size, _):
            return .opaque(size)
        case .compound(let size, let members):
            var fields: [JSON] = []
            var expected = 0
            // Structured dtypes in Zarr v2 are packed; padding becomes unnamed void fields, as
            // numpy spells an aligned compound.
            for member in members.sorted(by: { $0.offset < $1.offset }) {
                guard member.offset >= expected else { throw MappingError.unsupportedType("compound members overlap") }
                if member.offset > expected { fields.append(.array([.string(""), .string("|V\(member.offset - expected)")])) }
                expected = member.offset
                var memberType = member.type
                var subShape: [Int] = []
                if case .array(_, let dims, let base) = member.type {
                    memberType = base
                    subShape = dims
                }
                let inner = try zarrType(memberType)
                guard inner.kind != .variableString, inner.kind != .structured else {
                    throw MappingError.unsupportedType("compound member \(member.name) of a nested or variable-length type")
                }
                var field: [JSON] = [.string(member.name), inner.v2]
                if !subShape.isEmpty { field.append(.array(subShape.map { .int(Int64($0)) })) }
                fields.append(.array(field))
                expected += member.type.size
            }
            if expected < size { fields.append(.array([.string(""), .string("|V\(size - expected)")])) }
            guard expected <= size else { throw MappingError.unsupportedType("compound members run past the type's size") }
            return .structured(.array(fields), size: size)
        case .reference:
            throw MappingError.unsupportedType("object or region references have no Zarr type")
        case .variableLengthSequence:
            throw MappingError.unsupportedType("variable-length sequences have no Zarr type")
        case .array:
            throw MappingError.unsupportedType("array datatypes outside compounds")
        case .time, .bitfield:
            throw MappingError.unsupportedType("HDF5 time and bitfield types")
        }
    }

    /// What numpy would misread in this type's stored bytes, or nil when it reads them as
    /// libhdf5 converts them: integers narrower than their container or above its lowest bit,
    /// floats in another format than IEEE 754's for their size (HDF5 lets a file declare both).
    static func misreadContainer(_ type: Datatype) -> String? {
        if type.isStandardNumber { return nil }
        switch type {
        case .integer(let size, _, _, let offset, let precision):
            return "\(precision)-bit integers from bit \(offset) of \(size)-byte containers"
        case .float(let size, _, let offset, let precision, let layout):
            return "\(precision)-bit floats from bit \(offset) of \(size)-byte containers (exponent of \(layout.exponentSize) bits, "
                + "bias \(layout.exponentBias), mantissa of \(layout.mantissaSize) bits)"
        case .enumeration(_, let base, _, _), .array(_, _, let base):
            return misreadContainer(base)
        case .compound(_, let members):
            return members.lazy.compactMap { misreadContainer($0.type) }.first
        default:
            return nil
        }
    }

    /// The numbers of an n-bit element in the order libhdf5's n-bit filter lists them (member
    /// order, arrays' bases, nested compounds; other types are kept as bytes): nil when a float's
    /// format is one no conversion here reads.
    static func nbitNumbers(_ type: Datatype) -> [NBitNumber]? {
        switch type {
        case .integer(_, _, let signed, _, _):
            return [.integer(signed: signed)]
        case .float(let size, _, _, _, let layout):
            guard size <= 8, let format = layout.format, format.fits(bits: size * 8) else { return nil }
            return [.float(format)]
        case .array(_, _, let base):
            return nbitNumbers(base)
        case .compound(_, let members):
            var numbers: [NBitNumber] = []
            for member in members {
                guard let inner = nbitNumbers(member.type) else { return nil }
                numbers += inner
            }
            return numbers
        default:
            return []
        }
    }

    static func pipeline(_ filters: [Filter], datatype: Datatype) throws -> [Codec] {
        // HDF5's shuffle leaves a buffer's trailing partial element in place; numcodecs'
        // refuses the buffer. After Fletcher-32, the buffer is the data and a 4-byte checksum,
        // so a Zarr reader could not decode one chunk.
        if let checksum = filters.firstIndex(where: { $0.id == 3 }), filters[checksum...].contains(where: { $0.id == 2 }) {
            throw MappingError.checksumBeforeShuffle
        }
        return try filters.map { filter in
            switch filter.id {
            case 1: return .zlib(level: Int(filter.clientData.first ?? 4))
            case 2: return .shuffle(elementSize: Int(filter.clientData.first ?? UInt32(datatype.size)))
            case 3: return .fletcher32
            case 32015: return .zstd(level: Int(filter.clientData.first ?? 0))
            case 307: return .bz2(level: Int(filter.clientData.first ?? 9))
            case 32001: return .blosc(Codec.Blosc(hdf5ClientData: filter.clientData))
            default:
                // Filters no Zarr reader decodes: zarrmount does, in the decoded view.
                switch (HDF5Filter.Kind(id: filter.id), datatype) {
                case (.nbit?, _):
                    guard let numbers = nbitNumbers(datatype) else { break }
                    return .hdf5(HDF5Filter(kind: .nbit, clientData: filter.clientData, numbers: numbers))
                case (.scaleoffset?, .integer), (.scaleoffset?, .float):
                    return .hdf5(HDF5Filter(kind: .scaleoffset, clientData: filter.clientData))
                case (.scaleoffset?, _): break
                case (let kind?, _): return .hdf5(HDF5Filter(kind: kind, clientData: filter.clientData))
                case (nil, _): break
                }
                throw MappingError.unsupportedFilter(name: filter.name, id: filter.id)
            }
        }
    }

    /// Values of attributes as netCDF4-python presents them: one-element arrays as scalars,
    /// strings decoded, non-finite floats as the bare literals Python's json reads.
    static func attributes(_ list: [Attribute], resolve: [UInt64: String], namedTypes: Set<String>) -> [(String, JSON)] {
        // Object and region references have no netCDF attribute type: netCDF-C leaves such
        // attributes out, and so do we (their addresses mean nothing outside the file).
        var result: [(String, JSON)] = []
        result.reserveCapacity(list.count)
        for index in list.indices
        where !hiddenAttributes.contains(list[index].name) && !holdsReferences(list[index].datatype)
            && !(isUserDefined(list[index].datatype) && !namedTypes.contains(nativeSignature(list[index].datatype)))
        {
            let name = list[index].name
            if list[index].dataspace.kind == .null {
                // netCDF-C reads a null dataspace as no values: text is empty, numbers an empty array.
                if case .string = list[index].datatype { result.append((name, .string(""))) } else { result.append((name, .array([]))) }
                continue
            }
            if case .string(let size, _, _) = list[index].datatype {
                let texts = fixedStringAttribute(list[index].raw, size: size, scalar: list[index].dataspace.kind == .scalar)
                result.append((name, texts.count == 1 ? .string(texts[0]) : .array(texts.map { .string($0) })))
                continue
            }
            let values = list[index].values.map { attributeJSON($0) }
            result.append((name, values.count == 1 ? values[0] : .array(values)))
        }
        return result
    }

    /// A fixed-length string attribute as netCDF-C reads it, whatever padding the file declares:
    /// a scalar is text (`NC_CHAR`) of the whole element, whose NULs netCDF4-python drops; an array
    /// is strings (`NC_STRING`), each ending at its first NUL. Spaces are kept either way.
    static func fixedStringAttribute(_ raw: [UInt8], size: Int, scalar: Bool) -> [String] {
        guard size > 0 else { return raw.isEmpty ? [] : [""] }
        var texts: [String] = []
        texts.reserveCapacity(raw.count / size)
        var start = 0
        while start + size <= raw.count {
            let element = raw[start..<(start + size)]
            let kept = scalar ? Array(element.filter { $0 != 0 }) : Array(element.prefix { $0 != 0 })
            texts.append(String(decoding: kept, as: UTF8.self))
            start += size
        }
        return texts
    }

    /// Compound, enum, opaque, variable-length sequence and array types: netCDF-C shows an
    /// attribute of these types only when its native type equals that of a datatype committed in
    /// the file (its user-defined types), and leaves the others out: h5py's booleans, complex
    /// numbers, structured values and array-typed (multi-dimensional) values among them.
    static func isUserDefined(_ type: Datatype) -> Bool {
        switch type {
        case .compound, .enumeration, .opaque, .variableLengthSequence, .array: return true
        default: return false
        }
    }

    /// The native signatures of the file's committed datatypes.
    /// The user-defined types netCDF-C knows in a file: committed ones, and the anonymous types
    /// of variables, which it adds to its type list as it reads them (an attribute of such a type
    /// is then shown, as `shared-messages.h5`'s compound attribute beside a compound variable).
    static func namedTypeSignatures(_ info: HDF5FileInfo) -> Set<String> {
        var signatures = Set(info.datatypes.compactMap { $0.datatype.map(nativeSignature) })
        for dataset in info.datasets {
            if let type = dataset.datatype, isUserDefined(type) { signatures.insert(nativeSignature(type)) }
        }
        return signatures
    }

    /// A type as `H5Tget_native_type` and `H5Tequal` see it: byte order and member offsets
    /// (padding) do not count; member names, sizes, signs and enum names and values do.
    static func nativeSignature(_ type: Datatype) -> String {
        switch type {
        case .integer(let size, _, let signed, _, _): return (signed ? "i" : "u") + "\(size)"
        case .float(let size, _, _, _, _): return "f\(size)"
        case .time(let size, _, _): return "t\(size)"
        case .bitfield(let size, _, _, _): return "b\(size)"
        case .string(let size, let padding, let charset): return "s\(size)\(padding.rawValue)\(charset)"
        case .opaque(let size, let tag): return "o\(size)\(tag.debugDescription)"
        case .reference(_, let kind): return "r\(kind)"
        case .variableLengthString(_, _, let charset): return "vs\(charset)"
        case .variableLengthSequence(_, let base): return "v(\(nativeSignature(base)))"
        case .array(_, let dimensions, let base): return "a\(dimensions)(\(nativeSignature(base)))"
        case .compound(_, let members):
            return "c{" + members.map { "\($0.name.debugDescription):\(nativeSignature($0.type))" }.joined(separator: ",") + "}"
        case .enumeration(_, let base, let names, let values):
            let value: ([UInt8]) -> String = { bytes in
                base.number(bytes[...]).map { "\($0)" } ?? "\(bytes)"
            }
            let members = zip(names, values).map { "\($0.debugDescription)=\(value($1))" }.sorted()
            return "e(\(nativeSignature(base))){" + members.joined(separator: ",") + "}"
        }
    }

    static func holdsReferences(_ type: Datatype) -> Bool {
        switch type {
        case .reference: return true
        case .compound(_, let members): return members.contains { holdsReferences($0.type) }
        case .array(_, _, let base), .variableLengthSequence(_, let base): return holdsReferences(base)
        default: return false
        }
    }

    static func attributeJSON(_ value: Value) -> JSON {
        switch value {
        case .integer(let v): return .int(v)
        case .unsigned(let v): return .uint(v)
        case .float(let v):
            if v.isNaN { return .literal("NaN") }
            if v.isInfinite { return .literal(v > 0 ? "Infinity" : "-Infinity") }
            return .double(v)
        case .string(let v): return .string(v)
        case .bytes(let v): return .string(String(decoding: v, as: UTF8.self))
        case .objectReference, .regionReference, .nullReference: return .null
        case .list(let items): return .array(items.map(attributeJSON))
        // As xarray writes a structured value: its fields in order (numpy tolist()).
        case .compound(let fields): return .array(fields.map { attributeJSON($0.value) })
        }
    }

    static func scalarJSON(_ value: Value?) -> JSON {
        guard let value else { return .null }
        return attributeJSON(value)
    }

    /// Zarr's spelling of a fill value: numbers, or "NaN"/"Infinity"/"-Infinity" strings.
    static func fillJSON(_ raw: [UInt8], datatype: Datatype) -> JSON {
        (try? zarrType(datatype))?.fillValueJSON(raw) ?? .null
    }

    /// Missing chunks read as Zarr's fill value; when that is not the HDF5 fill value (no
    /// `_FillValue`, or a different one), they are given an inline chunk holding the HDF5 fill,
    /// so never-written regions read as netCDF reads them.
    public static func fillMissingChunks(_ array: inout VirtualArray, hdf5Fill: [UInt8]) throws {
        guard array.manifest.storedChunkCount < array.manifest.count else { return }
        if case .null = array.fillValue {} else if zarrFillBytes(array) == hdf5Fill { return }
        var bytes: UInt64? = UInt64(max(hdf5Fill.count, 1))
        for extent in array.chunkShape {
            bytes = bytes.flatMap { total in
                let (product, overflow) = total.multipliedReportingOverflow(by: extent)
                return overflow ? nil : product
            }
        }
        guard let bytes, bytes <= UInt64(maxFillChunkBytes) else {
            throw MappingError.fillChunkTooLarge(chunkShape: array.chunkShape, limit: maxFillChunkBytes)
        }
        var raw: [UInt8] = []
        raw.reserveCapacity(Int(bytes))
        for _ in 0..<(Int(bytes) / max(hdf5Fill.count, 1)) { raw += hdf5Fill }
        let encoded = try ChunkEncoder.encode(raw, pipeline: array.codecs)
        array.manifest.fillMissing(with: encoded)
    }

    /// The largest fill chunk synthesised for chunks an array never wrote.
    static let maxFillChunkBytes = 64 << 20

    public static func zarrFillBytes(_ array: VirtualArray) -> [UInt8]? {
        let size = array.dtype.itemSize
        func floatBits(_ d: Double) -> UInt64 {
            size == 4 ? UInt64(Float(d).bitPattern) : size == 2 ? UInt64(Float16(d).bitPattern) : d.bitPattern
        }
        let bits: UInt64
        switch (array.fillValue, array.dtype.kind) {
        case (.int(let v), .signed), (.int(let v), .unsigned): bits = UInt64(bitPattern: v)
        case (.uint(let v), _): bits = v
        case (.double(let v), .float): bits = floatBits(v)
        case (.int(let v), .float): bits = floatBits(Double(v))
        case (.string(let s), .float): bits = floatBits(s == "NaN" ? .nan : s == "Infinity" ? .infinity : -.infinity)
        default: return nil
        }
        var out = (0..<size).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }
        if array.dtype.bigEndian { out.reverse() }
        return out
    }
}

extension ByteOrder {
    var prefix: String { self == .littleEndian ? "<" : ">" }
}

/// The external files a file's datasets name, numbered after the file's own object in the
/// order they are first used.
final class ExternalObjectNames {
    let firstID: UInt32
    private(set) var names: [String] = []
    private var ids: [String: UInt32] = [:]

    init(firstID: UInt32) { self.firstID = firstID }

    /// A file naming more distinct external files than this is hostile: a manifest's object
    /// ids stay far below its markers, and the scan lists each name.
    static let maxNames = 1 << 16

    func id(for name: String) throws(MappingError) -> UInt32 {
        if let id = ids[name] { return id }
        guard names.count < Self.maxNames else { throw .externalData("the file names more than \(Self.maxNames) external files") }
        let id = firstID + UInt32(names.count)
        names.append(name)
        ids[name] = id
        return id
    }
}
