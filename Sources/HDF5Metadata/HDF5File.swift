import ByteSource
import Synchronization

public struct GroupInfo: Sendable {
    public var path: String
    /// Other hard-link paths to this group (its members are reachable through each).
    public var aliases: [String] = []
    public var address: UInt64
    public var links: [Link]
    public var attributes: [Attribute]
    public var error: HDF5Error?
}

public struct DatasetInfo: Sendable {
    public var path: String
    public var aliases: [String] = []
    public var address: UInt64
    public var datatype: Datatype?
    public var dataspace: Dataspace?
    public var layout: Layout?
    public var filters: [Filter] = []
    public var fillValue: FillValue = .unset
    public var attributes: [Attribute] = []
    /// Every allocated chunk, sorted by grid coordinates; contiguous data is one chunk at the
    /// origin; compact and never-written data have none.
    public var chunks: ChunkTable?
    public var error: HDF5Error?
}

public struct CommittedDatatypeInfo: Sendable {
    public var path: String
    public var address: UInt64
    public var datatype: Datatype?
    public var error: HDF5Error?
}

/// Everything the parser learned about one file's structure.
public struct HDF5FileInfo: Sendable {
    public var name: String
    public var size: UInt64
    public var superblock: Superblock
    public var groups: [GroupInfo]
    public var datasets: [DatasetInfo]
    public var datatypes: [CommittedDatatypeInfo]
    /// Object address (relative) → primary path, for resolving object references.
    public var pathsByAddress: [UInt64: String]
}

public enum HDF5File {
    /// Parses the structure of the HDF5 file behind `source`: every group, dataset, committed
    /// datatype, attribute and chunk. Reads metadata only. Independent reads are issued
    /// concurrently, so wrap `source` in a `BlockCache` when it is remote.
    ///
    /// A problem confined to one object is recorded on that object (`error`); a problem with
    /// the file itself (no superblock, unreadable root group) throws.
    public static func parse(_ source: some RandomAccessSource, limits: ParseLimits = ParseLimits()) async throws -> HDF5FileInfo {
        do {
            return try await parseThrowingHDF5Error(source, limits: limits)
        } catch let error as HDF5Error {
            throw HDF5FileError(file: source.name, error)
        }
    }

    private static func parseThrowingHDF5Error(_ source: some RandomAccessSource, limits: ParseLimits) async throws -> HDF5FileInfo {
        let fileSize: UInt64
        do { fileSize = try await source.size() } catch { throw HDF5Error(.io, "file", at: 0, "\(error)") }
        let superblock = try await Superblock.locate(source: source, fileSize: fileSize)
        var context = FileContext(source: source, fileSize: fileSize, base: superblock.position,
                                  offsetSize: superblock.offsetSize, lengthSize: superblock.lengthSize, limits: limits)
        if let extensionAddress = superblock.extensionAddress {
            context = context.with(sharedMessageHeaps: try await sharedMessageHeaps(extension: extensionAddress, in: context))
        }
        return try await Traversal(context: context).run(superblock: superblock)
    }

    private static func sharedMessageHeaps(extension address: UInt64, in context: FileContext) async throws -> [(typeMask: UInt16, heapAddress: UInt64)] {
        let header = try await ObjectHeader.read(at: address, in: context)
        guard let message = header.first(.sharedMessageTable) else { return [] }
        var cursor = context.cursor(message.body, at: message.origin, "shared message table message")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "shared message table message version \(version)") }
        guard let tableAddress = try cursor.address() else { return [] }
        let count = Int(try cursor.u8())
        let entrySize = 1 + 1 + 2 + 4 + 2 + 2 + 2 + 2 * context.offsetSize
        var table = try await context.read(tableAddress, 4 + count * entrySize + 4, "shared message table")
        try table.signature("SMTB")
        var heaps: [(typeMask: UInt16, heapAddress: UInt64)] = []
        for _ in 0..<count {
            _ = try table.u8()
            _ = try table.u8()
            let mask = try table.u16()
            try table.skip(4 + 2 + 2 + 2)
            _ = try table.address()
            if let heap = try table.address() { heaps.append((mask, heap)) }
        }
        try table.verifyChecksum(from: 0)
        return heaps
    }
}

/// Walks the group tree breadth-first (so every object gets its shortest, then alphabetically
/// first, path), then fills in attributes and chunk tables of all objects concurrently.
private struct Traversal {
    let context: FileContext

    private enum Kind {
        case group(links: [Link])
        case dataset
        case datatype
    }

    private struct Visited {
        var path: String
        var header: ObjectHeader?
        var kind: Kind?
        var error: HDF5Error?
    }

    func run(superblock: Superblock) async throws -> HDF5FileInfo {
        let root = superblock.rootObjectHeader
        var order: [UInt64] = []
        var visited: [UInt64: Visited] = [:]
        var aliases: [UInt64: [String]] = [:]
        var level: [(String, UInt64)] = [("/", root)]
        var depth = 0
        while !level.isEmpty {
            depth += 1
            if depth > context.limits.maxDepth {
                throw HDF5Error(.limitExceeded, "group tree", at: context.absolute(root), "groups nested deeper than \(context.limits.maxDepth)")
            }
            let context = self.context
            let parsed = try await ReadRounds.concurrentMap(level) { entry -> Visited in
                do {
                    let header = try await ObjectHeader.read(at: entry.1, in: context)
                    let kind = try await Self.classify(header, in: context)
                    return Visited(path: entry.0, header: header, kind: kind)
                } catch let error as HDF5Error {
                    return Visited(path: entry.0, error: error)
                }
            }
            if depth == 1, let error = parsed[0].error { throw error }
            for ((_, address), result) in zip(level, parsed) {
                visited[address] = result
                order.append(address)
            }
            var next: [(String, UInt64)] = []
            var queued: Set<UInt64> = []
            for ((path, _), result) in zip(level, parsed) {
                guard case .group(let links) = result.kind else { continue }
                for link in links.sorted(by: { $0.name < $1.name }) {
                    guard case .hard(let child) = link.target else { continue }
                    let childPath = path == "/" ? "/" + link.name : path + "/" + link.name
                    if visited[child] != nil || !queued.insert(child).inserted {
                        aliases[child, default: []].append(childPath)
                    } else {
                        next.append((childPath, child))
                    }
                }
            }
            if order.count + next.count > context.limits.maxObjects {
                throw HDF5Error(.limitExceeded, "group tree", at: context.absolute(root), "more than \(context.limits.maxObjects) objects")
            }
            level = next
        }

        let context = self.context
        let finalVisited = visited
        let finalAliases = aliases
        let details = try await ReadRounds.concurrentMap(order) { address -> ObjectDetails in
            let entry = finalVisited[address]!
            return await Self.details(of: entry, address: address, aliases: finalAliases[address] ?? [], in: context)
        }
        var groups: [GroupInfo] = []
        var datasets: [DatasetInfo] = []
        var datatypes: [CommittedDatatypeInfo] = []
        for detail in details {
            switch detail {
            case .group(let group): groups.append(group)
            case .dataset(let dataset): datasets.append(dataset)
            case .datatype(let datatype): datatypes.append(datatype)
            }
        }
        var paths: [UInt64: String] = [:]
        for address in order { paths[address] = visited[address]!.path }
        return HDF5FileInfo(name: context.name, size: context.fileSize, superblock: superblock, groups: groups,
                            datasets: datasets, datatypes: datatypes, pathsByAddress: paths)
    }

    private static func classify(_ header: ObjectHeader, in context: FileContext) async throws -> Kind {
        if header.first(.layout) != nil { return .dataset }
        if let table = header.first(.symbolTable) {
            var cursor = context.cursor(table.body, at: table.origin, "symbol table message")
            return .group(links: try await oldStyleLinks(try SymbolTableMessage.parse(&cursor), in: context))
        }
        if header.first(.linkInfo) != nil || header.first(.link) != nil || header.first(.groupInfo) != nil {
            return .group(links: try await newStyleLinks(header, in: context))
        }
        if header.first(.datatype) != nil { return .datatype }
        return .group(links: [])
    }

    private static func oldStyleLinks(_ table: SymbolTableMessage, in context: FileContext) async throws -> [Link] {
        async let heapRead = LocalHeap.read(at: table.localHeapAddress, in: context)
        let nodes = try await BTreeV1.groupNodes(at: table.btreeAddress, in: context)
        let entries = try await ReadRounds.concurrentMap(nodes) { node in try await SymbolTableNode.entries(at: node, in: context) }
        let heap = try await heapRead
        var links: [Link] = []
        for entry in entries.flatMap({ $0 }) {
            let name = try heap.string(at: entry.nameOffset)
            if entry.cacheType == 2 {
                var scratch = context.cursor(entry.scratch, at: 0, "symbol table entry")
                let offset = UInt64(try scratch.u32())
                links.append(Link(name: name, target: .soft(path: try heap.string(at: offset))))
            } else if let address = entry.objectAddress {
                links.append(Link(name: name, target: .hard(address: address)))
            }
        }
        return links
    }

    private static func newStyleLinks(_ header: ObjectHeader, in context: FileContext) async throws -> [Link] {
        var links: [Link] = []
        for message in header.all(.link) {
            var cursor = context.cursor(message.body, at: message.origin, "link message")
            links.append(try Link.parse(&cursor))
        }
        if let infoMessage = header.first(.linkInfo) {
            var cursor = context.cursor(infoMessage.body, at: infoMessage.origin, "link info message")
            let info = try LinkInfo.parse(&cursor)
            if let heapAddress = info.fractalHeapAddress, let indexAddress = info.nameIndexAddress {
                async let heapOpen = FractalHeap.open(at: heapAddress, in: context)
                let index = try await BTreeV2.records(at: indexAddress, in: context)
                let heap = try await heapOpen
                guard index.type == 5 else {
                    throw HDF5Error(.corrupt, "link name index", at: context.absolute(indexAddress), "record type \(index.type), expected 5")
                }
                let dense = try await ReadRounds.concurrentMap(index.records) { record -> Link in
                    let object = try await heap.object(id: Array(record.dropFirst(4)))
                    var cursor = context.cursor(object, at: context.absolute(heapAddress), "dense link")
                    return try Link.parse(&cursor)
                }
                links += dense
            }
        }
        return links
    }

    enum ObjectDetails: Sendable {
        case group(GroupInfo)
        case dataset(DatasetInfo)
        case datatype(CommittedDatatypeInfo)
    }

    private static func details(of entry: Visited, address: UInt64, aliases: [String], in context: FileContext) async -> ObjectDetails {
        guard let header = entry.header, let kind = entry.kind else {
            return .dataset(DatasetInfo(path: entry.path, aliases: aliases, address: address, error: entry.error))
        }
        switch kind {
        case .group(let links):
            var group = GroupInfo(path: entry.path, aliases: aliases, address: address, links: links, attributes: [])
            do { group.attributes = try await attributes(of: header, in: context) } catch let error as HDF5Error { group.error = error } catch {}
            return .group(group)
        case .datatype:
            var info = CommittedDatatypeInfo(path: entry.path, address: address)
            do {
                if let message = header.first(.datatype) {
                    var cursor = try await context.resolve(message)
                    info.datatype = try Datatype.parse(&cursor)
                }
            } catch let error as HDF5Error { info.error = error } catch {}
            return .datatype(info)
        case .dataset:
            var dataset = DatasetInfo(path: entry.path, aliases: aliases, address: address)
            do {
                try await fillDataset(&dataset, header: header, in: context)
            } catch let error as HDF5Error {
                dataset.error = error
            } catch {
                dataset.error = HDF5Error(.io, "dataset", at: context.absolute(address), "\(error)")
            }
            return .dataset(dataset)
        }
    }

    private static func fillDataset(_ dataset: inout DatasetInfo, header: ObjectHeader, in context: FileContext) async throws {
        let position = context.absolute(header.address)
        guard let typeMessage = header.first(.datatype), let spaceMessage = header.first(.dataspace),
              let layoutMessage = header.first(.layout) else {
            throw HDF5Error(.corrupt, "dataset object header", at: position, "missing datatype, dataspace or layout message")
        }
        var typeCursor = try await context.resolve(typeMessage)
        let datatype = try Datatype.parse(&typeCursor)
        dataset.datatype = datatype
        var spaceCursor = try await context.resolve(spaceMessage)
        let dataspace = try Dataspace.parse(&spaceCursor)
        dataset.dataspace = dataspace
        var layoutCursor = context.cursor(layoutMessage.body, at: layoutMessage.origin, "data layout message")
        let layout = try Layout.parse(&layoutCursor)
        dataset.layout = layout
        if let pipeline = header.first(.filterPipeline) {
            var cursor = try await context.resolve(pipeline)
            dataset.filters = try Filter.parsePipeline(&cursor)
        }
        if let fill = header.first(.fillValue) {
            var cursor = try await context.resolve(fill)
            dataset.fillValue = try FillValue.parse(&cursor)
        } else {
            // Headers written before HDF5 1.6 carry no (new) fill value message: libhdf5 then
            // reports the fill as undefined, or as the old message's value, and derives the
            // allocation time from the layout.
            dataset.fillValue = FillValue(status: .undefined, allocationTime: FillValue.defaultAllocationTime(for: layout),
                                          writeTime: .ifset, bytes: nil)
            if let fill = header.first(.fillValueOld) {
                var cursor = try await context.resolve(fill)
                let old = try FillValue.parseOld(&cursor)
                dataset.fillValue.status = old.status
                dataset.fillValue.bytes = old.bytes
            }
        }
        async let attributeList = attributes(of: header, in: context)
        if header.first(.externalFiles) != nil {
            dataset.attributes = try await attributeList
            throw HDF5Error(.unsupported, "dataset", at: position, "raw data in external files (external file list message)")
        }
        switch layout {
        case .virtual:
            dataset.attributes = try await attributeList
            throw HDF5Error(.unsupported, "data layout message", at: layoutMessage.origin, "virtual dataset (VDS) layout")
        case .compact:
            dataset.chunks = nil
        case .contiguous(let address, let size):
            var table = ChunkTable(rank: dataspace.dimensions.count)
            if let address, size > 0 {
                table.append(coordinates: [UInt64](repeating: 0, count: dataspace.dimensions.count),
                             offset: context.absolute(address), size: size, filterMask: 0)
            }
            dataset.chunks = table
        case .chunked(let chunked):
            var table = try await ChunkEnumerator(context: context, layout: chunked, dataspace: dataspace,
                                                  filtered: !dataset.filters.isEmpty).enumerate()
            table.sortByCoordinates()
            dataset.chunks = table
        }
        dataset.attributes = try await attributeList
    }

    private static func attributes(of header: ObjectHeader, in context: FileContext) async throws -> [Attribute] {
        var bodies: [ByteCursor] = []
        for message in header.all(.attribute) { bodies.append(try await context.resolve(message)) }
        if let infoMessage = header.first(.attributeInfo) {
            var cursor = context.cursor(infoMessage.body, at: infoMessage.origin, "attribute info message")
            let info = try AttributeInfo.parse(&cursor)
            if let heapAddress = info.fractalHeapAddress, let indexAddress = info.nameIndexAddress {
                async let heapOpen = FractalHeap.open(at: heapAddress, in: context)
                let index = try await BTreeV2.records(at: indexAddress, in: context)
                let heap = try await heapOpen
                guard index.type == 8 else {
                    throw HDF5Error(.corrupt, "attribute name index", at: context.absolute(indexAddress), "record type \(index.type), expected 8")
                }
                let dense = try await ReadRounds.concurrentMap(index.records) { record -> ByteCursor in
                    let object = try await heap.object(id: Array(record.prefix(8)))
                    let flags = record.count > 8 ? record[8] : 0
                    return try await context.resolve(HeaderMessage(type: MessageType.attribute.rawValue, flags: flags,
                                                                   body: object, origin: context.absolute(heapAddress)))
                }
                bodies += dense
            }
        }
        let decoder = ValueDecoder(context: context)
        var result: [Attribute] = []
        for var body in bodies {
            var (attribute, _) = try await Attribute.parse(&body, context: context)
            attribute.values = try await decoder.decodeAll(attribute.raw, type: attribute.datatype,
                                                           count: Int(clamping: attribute.dataspace.elementCount), origin: body.origin)
            result.append(attribute)
        }
        return result.sorted { $0.name < $1.name }
    }
}
