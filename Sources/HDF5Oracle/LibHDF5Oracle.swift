import CHDF5
import HDF5Metadata

/// What libhdf5 says about one dataset: the reference the native parser is held against.
public struct OracleDataset: Sendable {
    public struct Chunk: Sendable, Hashable {
        public var elementOffsets: [UInt64]
        public var filterMask: UInt32
        public var address: UInt64
        public var size: UInt64
    }

    public var path: String
    public var typeClass: Int32
    public var typeSize: Int
    public var shape: [UInt64]
    public var maxShape: [UInt64?]
    public var layout: String
    public var chunkShape: [UInt64]?
    public var filters: [(id: Int32, flags: UInt32, clientData: [UInt32])]
    /// `undefined`, `default` or `user_defined`, as `H5Pfill_value_defined` says.
    public var fillStatus: String
    public var fillBytes: [UInt8]?
    public var chunks: [Chunk]
    /// False when libhdf5 could not list the chunks (e.g. a filter it cannot load).
    public var chunksListed: Bool
    public var contiguousOffset: UInt64?
    public var storageSize: UInt64
    public var attributes: [String: [UInt8]?]
}

extension OracleDataset {
    /// A dataset libhdf5 lists but cannot open (a newer format version than the system
    /// library knows, or a missing filter); comparisons skip it.
    static func unreadable(_ path: String) -> OracleDataset {
        OracleDataset(
            path: path, typeClass: -1, typeSize: 0, shape: [], maxShape: [], layout: "unreadable", chunkShape: nil,
            filters: [], fillStatus: "", fillBytes: nil, chunks: [], chunksListed: false, contiguousOffset: nil,
            storageSize: 0, attributes: [:])
    }

    public var isReadable: Bool { layout != "unreadable" }
}

public struct OracleError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var detail: String
    public var description: String { "\(file): libhdf5 could not \(detail)" }
}

/// Reads a file's datasets through libhdf5 (Debian's, linked through `CHDF5`). libhdf5 is not
/// thread-safe: call this from one thread at a time.
public enum LibHDF5Oracle {
    public static var version: String {
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        _ = H5get_libversion(&major, &minor, &release)
        return "\(major).\(minor).\(release)"
    }

    public static func describe(path: String) throws -> [OracleDataset] {
        _ = chdf5_open_library()
        _ = chdf5_silence_errors()
        let file = H5Fopen(path, chdf5_read_only(), chdf5_property_default())
        guard file >= 0 else { throw OracleError(file: path, detail: "open the file") }
        defer { H5Fclose(file) }

        final class Collector {
            var paths: [String] = []
        }
        let collector = Collector()
        let status = chdf5_visit(
            file,
            { _, name, info, context in
                guard let name, let info, let context else { return 0 }
                if info.pointee.type == H5O_TYPE_DATASET {
                    let box = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
                    box.paths.append("/" + String(cString: name))
                }
                return 0
            }, Unmanaged.passUnretained(collector).toOpaque())
        guard status >= 0 else { throw OracleError(file: path, detail: "visit the objects") }
        return collector.paths.map { datasetPath in
            (try? dataset(file: file, path: datasetPath, fileName: path)) ?? OracleDataset.unreadable(datasetPath)
        }
    }

    private static func dataset(file: hid_t, path: String, fileName: String) throws -> OracleDataset {
        let dset = H5Dopen2(file, path, chdf5_property_default())
        guard dset >= 0 else { throw OracleError(file: fileName, detail: "open dataset \(path)") }
        defer { H5Dclose(dset) }
        let type = H5Dget_type(dset)
        defer { H5Tclose(type) }
        let space = H5Dget_space(dset)
        defer { H5Sclose(space) }
        let dcpl = H5Dget_create_plist(dset)
        defer { H5Pclose(dcpl) }

        let rank = Int(max(H5Sget_simple_extent_ndims(space), 0))
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        var maxDims = [hsize_t](repeating: 0, count: max(rank, 1))
        _ = H5Sget_simple_extent_dims(space, &dims, &maxDims)
        let unlimited = hsize_t.max

        var layoutName = "unknown"
        var chunkShape: [UInt64]?
        switch H5Pget_layout(dcpl) {
        case H5D_COMPACT: layoutName = "compact"
        case H5D_CONTIGUOUS: layoutName = "contiguous"
        case H5D_CHUNKED:
            layoutName = "chunked"
            var chunk = [hsize_t](repeating: 0, count: max(rank, 1))
            _ = H5Pget_chunk(dcpl, Int32(rank), &chunk)
            chunkShape = Array(chunk.prefix(rank)).map { UInt64($0) }
        case H5D_VIRTUAL: layoutName = "virtual"
        default: break
        }

        var filters: [(Int32, UInt32, [UInt32])] = []
        for index in 0..<max(H5Pget_nfilters(dcpl), 0) {
            var flags: UInt32 = 0
            var count = 32
            var values = [UInt32](repeating: 0, count: 32)
            var name = [CChar](repeating: 0, count: 256)
            var config: UInt32 = 0
            let id = H5Pget_filter2(dcpl, UInt32(index), &flags, &count, &values, 256, &name, &config)
            filters.append((id, flags, Array(values.prefix(count))))
        }

        var fillStatus = H5D_FILL_VALUE_ERROR
        _ = H5Pfill_value_defined(dcpl, &fillStatus)
        var statusName = "undefined"
        var fillBytes: [UInt8]?
        switch fillStatus {
        case H5D_FILL_VALUE_DEFAULT: statusName = "default"
        case H5D_FILL_VALUE_USER_DEFINED:
            statusName = "user_defined"
            if H5Tdetect_class(type, H5T_VLEN) <= 0 && H5Tis_variable_str(type) <= 0 {
                var buffer = [UInt8](repeating: 0, count: H5Tget_size(type))
                if H5Pget_fill_value(dcpl, type, &buffer) >= 0 { fillBytes = buffer }
            }
        default: break
        }

        var chunks: [OracleDataset.Chunk] = []
        var chunksListed = true
        if layoutName == "chunked" {
            var count: hsize_t = 0
            chunksListed = H5Dget_num_chunks(dset, space, &count) >= 0
            if chunksListed {
                for index in 0..<count {
                    var offsets = [hsize_t](repeating: 0, count: max(rank, 1))
                    var mask: UInt32 = 0
                    var address: haddr_t = 0
                    var size: hsize_t = 0
                    if H5Dget_chunk_info(dset, space, index, &offsets, &mask, &address, &size) < 0 {
                        chunksListed = false
                    } else {
                        chunks.append(
                            .init(
                                elementOffsets: offsets.prefix(rank).map { UInt64($0) }, filterMask: mask,
                                address: UInt64(address), size: UInt64(size)))
                    }
                }
            }
        }
        let offset = H5Dget_offset(dset)
        var attributes: [String: [UInt8]?] = [:]
        let attributeCount = H5Aget_num_attrs(dset)
        for index in 0..<max(attributeCount, 0) {
            let attribute = H5Aopen_by_idx(dset, ".", H5_INDEX_NAME, H5_ITER_INC, hsize_t(index), chdf5_property_default(), chdf5_property_default())
            guard attribute >= 0 else { continue }
            defer { H5Aclose(attribute) }
            var nameBuffer = [CChar](repeating: 0, count: 1024)
            _ = H5Aget_name(attribute, 1024, &nameBuffer)
            let name = String(cString: nameBuffer)
            let attributeType = H5Aget_type(attribute)
            defer { H5Tclose(attributeType) }
            if H5Tdetect_class(attributeType, H5T_VLEN) > 0 || H5Tis_variable_str(attributeType) > 0 {
                attributes[name] = .some(nil)
                continue
            }
            let storage = Int(H5Aget_storage_size(attribute))
            var raw = [UInt8](repeating: 0, count: storage)
            if storage == 0 || H5Aread(attribute, attributeType, &raw) >= 0 { attributes[name] = raw } else { attributes[name] = .some(nil) }
        }
        return OracleDataset(
            path: path, typeClass: H5Tget_class(type).rawValue, typeSize: H5Tget_size(type),
            shape: dims.prefix(rank).map { UInt64($0) },
            maxShape: maxDims.prefix(rank).map { $0 == unlimited ? nil : UInt64($0) },
            layout: layoutName, chunkShape: chunkShape, filters: filters, fillStatus: statusName, fillBytes: fillBytes,
            chunks: chunks, chunksListed: chunksListed, contiguousOffset: offset == haddr_t.max ? nil : UInt64(offset),
            storageSize: UInt64(H5Dget_storage_size(dset)), attributes: attributes)
    }
}

/// Compares the native parser's view of a file with libhdf5's, dataset by dataset.
public enum OracleComparison {
    /// Human-readable differences; empty when the two agree on everything compared.
    public static func differences(native: HDF5FileInfo, oracle: [OracleDataset]) -> [String] {
        let base = native.superblock.position
        var out: [String] = []
        var byPath: [String: DatasetInfo] = [:]
        for dataset in native.datasets {
            byPath[dataset.path] = dataset
            for alias in dataset.aliases { byPath[alias] = dataset }
        }
        // libhdf5 names an object reached through several hard links by its depth-first path;
        // the native parser by its breadth-first one. Rewrite group aliases to primary paths.
        var groupAliases: [(alias: String, primary: String)] = []
        for group in native.groups { for alias in group.aliases { groupAliases.append((alias, group.path)) } }
        func canonical(_ path: String) -> String {
            var current = path
            for _ in 0..<16 {
                guard byPath[current] == nil,
                    let match = groupAliases.filter({ current.hasPrefix($0.alias + "/") }).max(by: { $0.alias.count < $1.alias.count })
                else { break }
                current = match.primary + current.dropFirst(match.alias.count)
            }
            return current
        }
        let oracle = oracle.map { dataset -> OracleDataset in
            var renamed = dataset
            renamed.path = canonical(dataset.path)
            return renamed
        }
        for expected in oracle where expected.isReadable {
            guard let got = byPath[expected.path] else {
                out.append("\(expected.path): missing from the native parse")
                continue
            }
            out += compare(expected, got, base: base)
        }
        let nativePaths = Set(native.datasets.map(\.path))
        let oraclePaths = Set(oracle.map(\.path))
        for path in nativePaths.subtracting(oraclePaths).sorted() where !(byPath[path]?.aliases.contains { oraclePaths.contains($0) } ?? false) {
            out.append("\(path): found by the native parser, not by libhdf5")
        }
        return out
    }

    private static func compare(_ expected: OracleDataset, _ got: DatasetInfo, base: UInt64) -> [String] {
        let path = expected.path
        if let error = got.error {
            if error.kind == .unsupported { return [] }
            return ["\(path): native parser failed: \(error)"]
        }
        var out: [String] = []
        func check<T: Equatable>(_ field: String, _ want: T, _ have: T) {
            if want != have { out.append("\(path): \(field) libhdf5 \(want), native \(have)") }
        }
        guard let type = got.datatype, let space = got.dataspace, let layout = got.layout else {
            return ["\(path): native parse incomplete"]
        }
        if !type.isVariableLength { check("element size", expected.typeSize, type.size) }
        check("shape", expected.shape, space.dimensions)
        check(
            "max shape", expected.maxShape.map { $0.map(String.init) ?? "unlimited" },
            space.maxDimensions.map { $0.map(String.init) ?? "unlimited" })
        check("layout", expected.layout, layout.className)
        if case .chunked(let chunked) = layout { check("chunk shape", expected.chunkShape ?? [], chunked.chunkShape) }
        check("filter ids", expected.filters.map { Int($0.id) }, got.filters.map { Int($0.id) })
        check("filter client data", expected.filters.map(\.clientData), got.filters.map(\.clientData))
        check("filter flags", expected.filters.map { $0.flags & 1 }, got.filters.map { UInt32($0.flags & 1) })
        check("fill status", expected.fillStatus, got.fillValue.status.rawValue)
        if let want = expected.fillBytes { check("fill value", want, got.fillValue.bytes ?? []) }
        switch layout {
        case .chunked(let chunked) where expected.chunksListed:
            let table = got.chunks ?? ChunkTable(rank: chunked.chunkShape.count)
            var have = Set<OracleDataset.Chunk>()
            for i in 0..<table.count {
                let offsets = zip(table.coordinates(of: i), chunked.chunkShape).map { $0 * $1 }
                have.insert(.init(elementOffsets: offsets, filterMask: table.filterMasks[i], address: table.offsets[i], size: table.sizes[i]))
            }
            // libhdf5 1.10's H5Dget_chunk_info counts addresses from the base (after a user
            // block); the native parser reports absolute file offsets.
            var want = Set(
                expected.chunks.map {
                    OracleDataset.Chunk(elementOffsets: $0.elementOffsets, filterMask: $0.filterMask, address: $0.address + base, size: $0.size)
                })
            if case .extensibleArray = chunked.index, (space.maxDimensions.firstIndex(where: { $0 == nil }) ?? 0) != 0 {
                // libhdf5 reports wrong coordinates for these (see the corpus README): compare the rest.
                want = Set(want.map { .init(elementOffsets: [], filterMask: $0.filterMask, address: $0.address, size: $0.size) })
                have = Set(have.map { .init(elementOffsets: [], filterMask: $0.filterMask, address: $0.address, size: $0.size) })
            }
            check("chunk count", expected.chunks.count, table.count)
            if want != have {
                let missing = want.subtracting(have).sorted { $0.address < $1.address }.prefix(3)
                let extra = have.subtracting(want).sorted { $0.address < $1.address }.prefix(3)
                out.append("\(path): chunks differ; libhdf5 only: \(Array(missing)); native only: \(Array(extra))")
            }
        case .contiguous:
            let first = got.chunks.flatMap { $0.count > 0 ? ($0.offsets[0], $0.sizes[0]) : nil }
            check("contiguous offset", expected.contiguousOffset.map(String.init) ?? "none", first.map { String($0.0) } ?? "none")
            if expected.contiguousOffset != nil { check("contiguous size", expected.storageSize, first?.1 ?? 0) }
        case .compact(let bytes):
            check("compact size", expected.storageSize, UInt64(bytes.count))
        case .virtual, .chunked:
            break
        }
        let attributes = Dictionary(got.attributes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        check("attribute names", expected.attributes.keys.sorted(), attributes.keys.sorted())
        for (name, raw) in expected.attributes {
            guard let raw, let attribute = attributes[name], !attribute.datatype.isVariableLength else { continue }
            if attribute.raw != raw { out.append("\(path): attribute \(name) bytes differ") }
        }
        return out
    }
}
