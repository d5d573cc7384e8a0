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
    /// Where the raw data is when it lives in other files (External Data Files message), in
    /// the order its bytes follow; empty otherwise.
    public var externalFiles: [ExternalFileSegment] = []
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
    public static func parse(
        _ source: some RandomAccessSource, limits: ParseLimits = ParseLimits(), policy: ReadPolicy = .concurrent
    ) async throws -> HDF5FileInfo {
        do {
            return try await parseThrowingHDF5Error(source, limits: limits, policy: policy)
        } catch let error as HDF5Error {
            throw HDF5FileError(file: source.name, error)
        }
    }

    private static func parseThrowingHDF5Error(
        _ source: some RandomAccessSource, limits: ParseLimits, policy: ReadPolicy
    ) async throws -> HDF5FileInfo {
        let fileSize: UInt64
        do { fileSize = try await source.size() } catch { throw HDF5Error(.io, "file", at: 0, "\(error)") }
        let superblock = try await Superblock.locate(source: source, fileSize: fileSize)
        var context = FileContext(
            source: source, fileSize: fileSize, base: superblock.position,
            offsetSize: superblock.offsetSize, lengthSize: superblock.lengthSize, limits: limits, policy: policy)
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

/// Discovers every object concurrently (a group's children are fetched as soon as its links
/// are known, a dataset's chunk index as soon as its header's first chunk is), then names the
/// objects breadth-first in memory, so every object gets its shortest, then alphabetically
/// first, path whatever order the reads completed in.
struct Traversal {
    let context: FileContext

    enum Kind: Sendable {
        case group(links: [Link])
        case dataset
        case datatype
    }

    /// One object as discovered, before it has a path.
    struct Discovered: Sendable {
        var address: UInt64
        var kind: Kind?
        var details: ObjectDetails?
        var error: HDF5Error?
    }

    private final class Claims: Sendable {
        let seen = Mutex<Set<UInt64>>([])
        func claim(_ address: UInt64) -> (fresh: Bool, count: Int) {
            seen.withLock { set in (set.insert(address).inserted, set.count) }
        }
    }

    func run(superblock: Superblock) async throws -> HDF5FileInfo {
        let root = superblock.rootObjectHeader
        let claims = Claims()
        let early = EarlyDatasets(context: context)
        await early.begin(skipping: root)
        defer { early.cancel() }
        let discovered = try await Self.visit(root, depth: 1, claims: claims, early: early, in: context)
        var byAddress: [UInt64: Discovered] = [:]
        for object in discovered { byAddress[object.address] = object }
        if let error = byAddress[root]?.error { throw error }

        // Name objects breadth-first: level by level, parents in order, links by name.
        var order: [UInt64] = [root]
        var paths: [UInt64: String] = [root: "/"]
        var aliases: [UInt64: [String]] = [:]
        var level: [UInt64] = [root]
        while !level.isEmpty {
            var next: [UInt64] = []
            for parent in level {
                guard case .group(let links) = byAddress[parent]?.kind, let parentPath = paths[parent] else { continue }
                for link in links.sorted(by: { $0.name < $1.name }) {
                    guard case .hard(let child) = link.target, byAddress[child] != nil else { continue }
                    let childPath = parentPath == "/" ? "/" + link.name : parentPath + "/" + link.name
                    if paths[child] == nil {
                        paths[child] = childPath
                        order.append(child)
                        next.append(child)
                    } else {
                        aliases[child, default: []].append(childPath)
                    }
                }
            }
            level = next
        }

        var groups: [GroupInfo] = []
        var datasets: [DatasetInfo] = []
        var datatypes: [CommittedDatatypeInfo] = []
        for address in order {
            guard let object = byAddress[address], let path = paths[address] else { continue }
            let objectAliases = aliases[address] ?? []
            switch object.details {
            case .group(var group):
                group.path = path
                group.aliases = objectAliases
                groups.append(group)
            case .dataset(var dataset):
                dataset.path = path
                dataset.aliases = objectAliases
                datasets.append(dataset)
            case .datatype(var datatype):
                datatype.path = path
                datatypes.append(datatype)
            case nil:
                datasets.append(DatasetInfo(path: path, aliases: objectAliases, address: address, error: object.error))
            }
        }
        return HDF5FileInfo(
            name: context.name, size: context.fileSize, superblock: superblock, groups: groups,
            datasets: datasets, datatypes: datatypes, pathsByAddress: paths)
    }

    /// What visiting an address comes to once it is claimed: nothing more (seen before, or too
    /// deep), an early parse to wait for, or a parse of its own.
    private enum Claim {
        case done([Discovered])
        case early(Task<EarlyDatasets.Parsed?, Never>)
        case parse
    }

    private static func claim(_ address: UInt64, depth: Int, claims: Claims, early: EarlyDatasets, in context: FileContext) throws -> Claim {
        let (fresh, count) = claims.claim(address)
        guard fresh else { return .done([]) }
        if count > context.limits.maxObjects {
            throw HDF5Error(.limitExceeded, "group tree", at: context.absolute(address), "more than \(context.limits.maxObjects) objects")
        }
        guard depth <= context.limits.maxDepth else {
            return .done([
                Discovered(
                    address: address,
                    error: HDF5Error(
                        .limitExceeded, "group tree", at: context.absolute(address),
                        "groups nested deeper than \(context.limits.maxDepth)"))
            ])
        }
        if let task = early.claim(address) { return .early(task) }
        return .parse
    }

    private static func visit(
        _ address: UInt64, depth: Int, claims: Claims, early: EarlyDatasets,
        in context: FileContext
    ) async throws -> [Discovered] {
        switch try claim(address, depth: depth, claims: claims, early: early, in: context) {
        case .done(let discovered):
            return discovered
        case .early(let task):
            if let parsed = await EarlyDatasets.result(of: task) { return [parsed] }
            return try await parse(address, depth: depth, claims: claims, early: early, in: context)
        case .parse:
            return try await parse(address, depth: depth, claims: claims, early: early, in: context)
        }
    }

    /// Visits a group's children: those parsed early are only waited for, without a task each;
    /// the others are parsed concurrently meanwhile.
    private static func visitChildren(
        _ addresses: [UInt64], depth: Int, claims: Claims, early: EarlyDatasets,
        in context: FileContext
    ) async throws -> [Discovered] {
        var settled: [[Discovered]] = []
        var waiting: [(address: UInt64, task: Task<EarlyDatasets.Parsed?, Never>)] = []
        var own: [UInt64] = []
        for address in addresses {
            switch try claim(address, depth: depth, claims: claims, early: early, in: context) {
            case .done(let discovered): settled.append(discovered)
            case .early(let task): waiting.append((address, task))
            case .parse: own.append(address)
            }
        }
        context.prefetch(own, length: context.policy.objectHeaderFirstRead)
        let parseOne: @Sendable (UInt64) async throws -> [Discovered] = { address in
            try await parse(address, depth: depth, claims: claims, early: early, in: context)
        }
        if waiting.isEmpty { return settled.flatMap { $0 } + (try await context.map(own, parseOne)).flatMap { $0 } }
        let pending = waiting
        let ownAddresses = own
        let (parsedEarly, parsedHere) = try await context.both(
            {
                var results: [Discovered] = []
                var unparsed: [UInt64] = []
                for (address, task) in pending {
                    if let parsed = await EarlyDatasets.result(of: task) { results.append(parsed) } else { unparsed.append(address) }
                }
                return results + (try await context.map(unparsed, parseOne)).flatMap { $0 }
            },
            {
                try await context.map(ownAddresses, parseOne)
            })
        return settled.flatMap { $0 } + parsedEarly + parsedHere.flatMap { $0 }
    }

    private static func parse(
        _ address: UInt64, depth: Int, claims: Claims, early: EarlyDatasets,
        in context: FileContext
    ) async throws -> [Discovered] {
        do {
            let (header, earlyChunks, earlyLinks) = try await complete(
                try await ObjectHeader.readFirstChunk(at: address, in: context),
                in: context)
            let kind = try await classify(header, indexedLinks: earlyLinks, in: context)
            switch kind {
            case .group(let links):
                var children: [UInt64] = []
                for link in links {
                    if case .hard(let child) = link.target, !children.contains(child) { children.append(child) }
                }
                let finalHeader = header
                let childAddresses = children
                let (details, descendants) = try await context.both(
                    {
                        await Self.groupDetails(finalHeader, links: links, address: address, in: context)
                    },
                    {
                        try await Self.visitChildren(childAddresses, depth: depth + 1, claims: claims, early: early, in: context)
                    })
                return [Discovered(address: address, kind: kind, details: details)] + descendants
            case .dataset:
                let details = await Self.datasetDetails(header, address: address, earlyChunks: earlyChunks, in: context)
                return [Discovered(address: address, kind: kind, details: details)]
            case .datatype:
                var info = CommittedDatatypeInfo(path: "", address: address)
                do {
                    if let message = header.first(.datatype) {
                        var cursor = try await context.resolve(message)
                        info.datatype = try Datatype.parse(&cursor)
                    }
                } catch let error as HDF5Error { info.error = error }
                return [Discovered(address: address, kind: kind, details: .datatype(info))]
            }
        } catch let error as HDF5Error {
            return [Discovered(address: address, error: error)]
        }
    }

    /// The rest of an object header after its first chunk: continuation blocks, and what can be
    /// fetched beside them (a dataset's chunk table, a group's indexed links).
    static func complete(
        _ firstChunk: ObjectHeader, in context: FileContext
    ) async throws
        -> (header: ObjectHeader, earlyChunks: Result<ChunkTable?, HDF5Error>?, earlyLinks: [Link]?)
    {
        var header = firstChunk
        var earlyChunks: Result<ChunkTable?, HDF5Error>?
        var earlyLinks: [Link]?
        if header.has(.layout), header.has(.dataspace), !header.pendingContinuations.isEmpty {
            // The layout sits in the first header chunk; attributes added later live in
            // continuation blocks. Both are fetched at once and then read one after the
            // other: the same rounds as two concurrent tasks (unless the B-tree has several
            // levels), without the tasks.
            // Parsed once for both; when that fails (or the dataspace is shared),
            // `chunkTable(of:)` reports why.
            let shape = try? Self.storageShape(of: header, in: context)
            let root = shape.flatMap { Self.chunkIndexFirstRead(layout: $0.layout, dataspace: $0.dataspace, in: context) }
            try await header.readContinuations(in: context, fetchingAlong: root.map { [$0] } ?? [])
            if let shape {
                earlyChunks = await Self.chunkTable(layout: shape.layout, dataspace: shape.dataspace, header: header, in: context)
            } else {
                earlyChunks = await Self.chunkTable(of: header, in: context)
            }
        } else if !header.pendingContinuations.isEmpty, !header.has(.layout),
            header.has(.symbolTable) || header.has(.linkInfo)
        {
            let firstChunk = header
            let (links, completed) = try await context.both(
                {
                    try await Self.indexedLinks(firstChunk, in: context)
                },
                {
                    var rest = firstChunk
                    try await rest.readContinuations(in: context)
                    return rest
                })
            earlyLinks = links
            header = completed
        } else {
            try await header.readContinuations(in: context)
        }
        return (header, earlyChunks, earlyLinks)
    }

    private static func classify(_ header: ObjectHeader, indexedLinks: [Link]? = nil, in context: FileContext) async throws -> Kind {
        if header.has(.layout) { return .dataset }
        let isGroup =
            header.has(.symbolTable) || header.has(.linkInfo) || header.has(.link)
            || header.has(.groupInfo)
        if !isGroup {
            return header.has(.datatype) ? .datatype : .group(links: [])
        }
        var links: [Link]
        if let indexedLinks {
            links = indexedLinks
        } else {
            links = try await Self.indexedLinks(header, in: context)
        }
        for message in header.all(.link) {
            var cursor = context.cursor(message.body, at: message.origin, "link message")
            links.append(try Link.parse(&cursor))
        }
        return .group(links: links)
    }

    /// Links kept outside the object header: an old-style group's symbol table, or a new-style
    /// group's dense storage. Both are named by messages of the header's first chunk.
    private static func indexedLinks(_ header: ObjectHeader, in context: FileContext) async throws -> [Link] {
        if let table = header.first(.symbolTable) {
            var cursor = context.cursor(table.body, at: table.origin, "symbol table message")
            return try await oldStyleLinks(try SymbolTableMessage.parse(&cursor), in: context)
        }
        guard let infoMessage = header.first(.linkInfo) else { return [] }
        var cursor = context.cursor(infoMessage.body, at: infoMessage.origin, "link info message")
        return try await denseLinks(try LinkInfo.parse(&cursor), in: context)
    }

    private static func oldStyleLinks(_ table: SymbolTableMessage, in context: FileContext) async throws -> [Link] {
        let (heap, entries) = try await context.both(
            {
                try await LocalHeap.read(at: table.localHeapAddress, in: context)
            },
            {
                let nodes = try await BTreeV1.groupNodes(at: table.btreeAddress, in: context)
                context.prefetch(nodes, length: 8 + 64 * (2 * context.offsetSize + 24))
                return try await context.map(nodes) { node in try await SymbolTableNode.entries(at: node, in: context) }
            })
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

    private static func denseLinks(_ info: LinkInfo, in context: FileContext) async throws -> [Link] {
        guard let heapAddress = info.fractalHeapAddress, let indexAddress = info.nameIndexAddress else { return [] }
        let (heap, index) = try await context.both(
            {
                try await FractalHeap.open(at: heapAddress, in: context)
            },
            {
                try await BTreeV2.records(at: indexAddress, in: context)
            })
        guard index.type == 5 else {
            throw HDF5Error(.corrupt, "link name index", at: context.absolute(indexAddress), "record type \(index.type), expected 5")
        }
        let objects = try await heap.objects(ids: index.records.map { Array($0.dropFirst(4)) })
        return try objects.map { object in
            var cursor = context.cursor(object, at: context.absolute(heapAddress), "dense link")
            return try Link.parse(&cursor)
        }
    }

    indirect enum ObjectDetails: Sendable {
        case group(GroupInfo)
        case dataset(DatasetInfo)
        case datatype(CommittedDatatypeInfo)
    }

    private static func groupDetails(_ header: ObjectHeader, links: [Link], address: UInt64, in context: FileContext) async -> ObjectDetails {
        var group = GroupInfo(path: "", address: address, links: links, attributes: [])
        do { group.attributes = try await attributes(of: header, in: context) } catch let error as HDF5Error { group.error = error } catch {}
        return .group(group)
    }

    static func datasetDetails(
        _ header: ObjectHeader, address: UInt64, earlyChunks: Result<ChunkTable?, HDF5Error>?,
        in context: FileContext
    ) async -> ObjectDetails {
        var dataset = DatasetInfo(path: "", address: address)
        do {
            try await fillDataset(&dataset, header: header, earlyChunks: earlyChunks, in: context)
        } catch let error as HDF5Error {
            dataset.error = error
        } catch {
            dataset.error = HDF5Error(.io, "dataset", at: context.absolute(address), "\(error)")
        }
        return .dataset(dataset)
    }

    /// A dataset's layout and dataspace from its header's own messages: nil when either is
    /// missing or the dataspace is shared (it would need a read).
    private static func storageShape(of header: ObjectHeader, in context: FileContext) throws -> (layout: Layout, dataspace: Dataspace)? {
        guard let layoutMessage = header.first(.layout), let spaceMessage = header.first(.dataspace), !spaceMessage.isShared else {
            return nil
        }
        var layoutCursor = context.cursor(layoutMessage.body, at: layoutMessage.origin, "data layout message")
        var spaceCursor = context.cursor(spaceMessage.body, at: spaceMessage.origin, "dataspace message")
        return (try Layout.parse(&layoutCursor), try Dataspace.parse(&spaceCursor))
    }

    /// The first read of the dataset's chunk index (see `ChunkEnumerator.firstRead`).
    private static func chunkIndexFirstRead(layout: Layout, dataspace: Dataspace, in context: FileContext) -> ByteRange? {
        guard case .chunked(let chunked) = layout else { return nil }
        return ChunkEnumerator(context: context, layout: chunked, dataspace: dataspace).firstRead
    }

    /// The chunk table of a chunked or contiguous dataset from its header alone (`nil` for
    /// compact and virtual layouts).
    private static func chunkTable(of header: ObjectHeader, in context: FileContext) async -> Result<ChunkTable?, HDF5Error> {
        do {
            guard let layoutMessage = header.first(.layout), let spaceMessage = header.first(.dataspace) else { return .success(nil) }
            var spaceCursor = try await context.resolve(spaceMessage)
            let dataspace = try Dataspace.parse(&spaceCursor)
            var layoutCursor = context.cursor(layoutMessage.body, at: layoutMessage.origin, "data layout message")
            let layout = try Layout.parse(&layoutCursor)
            return await chunkTable(layout: layout, dataspace: dataspace, header: header, in: context)
        } catch let error as HDF5Error {
            return .failure(error)
        } catch {
            return .failure(HDF5Error(.io, "chunk index", at: context.absolute(header.address), "\(error)"))
        }
    }

    /// The chunk table for a dataset's parsed layout and dataspace (`header` names it in errors).
    private static func chunkTable(
        layout: Layout, dataspace: Dataspace, header: ObjectHeader,
        in context: FileContext
    ) async -> Result<ChunkTable?, HDF5Error> {
        do {
            switch layout {
            case .compact, .virtual:
                return .success(nil)
            case .contiguous(let address, let size):
                var table = ChunkTable(rank: dataspace.dimensions.count)
                if let address, size > 0 {
                    table.append(
                        coordinates: [UInt64](repeating: 0, count: dataspace.dimensions.count),
                        offset: context.absolute(address), size: size, filterMask: 0)
                }
                return .success(table)
            case .chunked(let chunked):
                var table = try await ChunkEnumerator(context: context, layout: chunked, dataspace: dataspace).enumerate()
                table.sortByCoordinates()
                return .success(table)
            }
        } catch let error as HDF5Error {
            return .failure(error)
        } catch {
            return .failure(HDF5Error(.io, "chunk index", at: context.absolute(header.address), "\(error)"))
        }
    }

    private static func fillDataset(
        _ dataset: inout DatasetInfo, header: ObjectHeader, earlyChunks: Result<ChunkTable?, HDF5Error>?,
        in context: FileContext
    ) async throws {
        let position = context.absolute(header.address)
        guard let typeMessage = header.first(.datatype), let spaceMessage = header.first(.dataspace),
            let layoutMessage = header.first(.layout)
        else {
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
            dataset.fillValue = FillValue(
                status: .undefined, allocationTime: FillValue.defaultAllocationTime(for: layout),
                writeTime: .ifset, bytes: nil)
            if let fill = header.first(.fillValueOld) {
                var cursor = try await context.resolve(fill)
                let old = try FillValue.parseOld(&cursor)
                dataset.fillValue.status = old.status
                dataset.fillValue.bytes = old.bytes
            }
        }
        let finalHeader = header
        if let message = header.first(.externalFiles) {
            // The bytes are in other files: no chunk of this file holds them, so the dataset
            // carries the segments instead of a chunk table.
            dataset.attributes = try await attributes(of: finalHeader, in: context)
            dataset.externalFiles = try await externalSegments(message, in: context)
            return
        }
        if case .virtual = layout {
            dataset.attributes = try await attributes(of: finalHeader, in: context)
            throw HDF5Error(.unsupported, "data layout message", at: layoutMessage.origin, "virtual dataset (VDS) layout")
        }
        if let earlyChunks {
            dataset.attributes = try await attributes(of: finalHeader, in: context)
            dataset.chunks = try earlyChunks.get()
        } else if let root = chunkIndexFirstRead(layout: layout, dataspace: dataspace, in: context) {
            // Attributes rarely need reads (variable-length values do); the B-tree root is
            // fetched beside them, and the tree walked after, without two concurrent tasks.
            context.prefetch([root])
            dataset.attributes = try await attributes(of: finalHeader, in: context)
            dataset.chunks = try await chunkTable(layout: layout, dataspace: dataspace, header: finalHeader, in: context).get()
        } else {
            let (attributeList, chunks) = try await context.both(
                {
                    try await attributes(of: finalHeader, in: context)
                },
                {
                    await chunkTable(layout: layout, dataspace: dataspace, header: finalHeader, in: context)
                })
            dataset.attributes = attributeList
            dataset.chunks = try chunks.get()
        }
    }

    /// The External Data Files message's segments with their names read from its local heap.
    /// Only the last segment may run to the end of the data (libhdf5's H5F_UNLIMITED size).
    private static func externalSegments(_ message: HeaderMessage, in context: FileContext) async throws -> [ExternalFileSegment] {
        var cursor = try await context.resolve(message)
        let list = try ExternalFileList.parse(&cursor)
        guard !list.slots.isEmpty else {
            throw HDF5Error(.corrupt, "external file list message", at: message.origin, "no external file named")
        }
        let heap = try await LocalHeap.read(at: list.heapAddress, in: context)
        var segments: [ExternalFileSegment] = []
        segments.reserveCapacity(list.slots.count)
        for (index, slot) in list.slots.enumerated() {
            let name = try heap.string(at: slot.nameOffset)
            guard !name.isEmpty else {
                throw HDF5Error(.corrupt, "external file list message", at: message.origin, "slot \(index) has an empty file name")
            }
            let unlimited = slot.size == UInt64.max
            guard !unlimited || index == list.slots.count - 1 else {
                throw HDF5Error(
                    .corrupt, "external file list message", at: message.origin, "slot \(index) of \(list.slots.count) has an unlimited size")
            }
            segments.append(ExternalFileSegment(name: name, offset: slot.offset, size: unlimited ? nil : slot.size))
        }
        return segments
    }

    private static func attributes(of header: ObjectHeader, in context: FileContext) async throws -> [Attribute] {
        let inHeader = header.all(.attribute)
        var bodies: [ByteCursor] = []
        bodies.reserveCapacity(inHeader.count)
        for message in inHeader { bodies.append(try await context.resolve(message)) }
        if let infoMessage = header.first(.attributeInfo) {
            var cursor = context.cursor(infoMessage.body, at: infoMessage.origin, "attribute info message")
            let info = try AttributeInfo.parse(&cursor)
            if let heapAddress = info.fractalHeapAddress, let indexAddress = info.nameIndexAddress {
                let (heap, index) = try await context.both(
                    {
                        try await FractalHeap.open(at: heapAddress, in: context)
                    },
                    {
                        try await BTreeV2.records(at: indexAddress, in: context)
                    })
                guard index.type == 8 else {
                    throw HDF5Error(.corrupt, "attribute name index", at: context.absolute(indexAddress), "record type \(index.type), expected 8")
                }
                let objects = try await heap.objects(ids: index.records.map { Array($0.prefix(8)) })
                let messages = zip(index.records, objects).map { record, object in
                    HeaderMessage(
                        type: MessageType.attribute.rawValue, flags: record.count > 8 ? record[8] : 0,
                        body: object, origin: context.absolute(heapAddress))
                }
                // Only shared attribute messages need reads of their own.
                if messages.contains(where: \.isShared) {
                    bodies += try await context.map(messages) { message in try await context.resolve(message) }
                } else {
                    for message in messages { bodies.append(try await context.resolve(message)) }
                }
            }
        }
        let decoder = ValueDecoder(context: context)
        var result: [Attribute] = []
        result.reserveCapacity(bodies.count)
        for var body in bodies {
            var attribute = try await Attribute.parse(&body, context: context)
            attribute.values = try await decoder.decodeAll(
                attribute.raw, type: attribute.datatype,
                count: Int(clamping: attribute.dataspace.elementCount), origin: body.origin)
            result.append(attribute)
        }
        // In place: `sorted` would copy every attribute (a dozen retains each) into a new array.
        result.sort { $0.name < $1.name }
        return result
    }
}
