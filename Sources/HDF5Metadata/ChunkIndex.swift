import ByteSource

/// The chunk table of one dataset, as compact columns in any order (sorted by the caller).
public struct ChunkTable: Sendable, Equatable {
    public var rank: Int
    /// Grid coordinates, `rank` per chunk.
    public var coordinates: [UInt64] = []
    /// Absolute file offsets.
    public var offsets: [UInt64] = []
    public var sizes: [UInt64] = []
    public var filterMasks: [UInt32] = []

    public init(rank: Int) { self.rank = rank }

    public var count: Int { offsets.count }

    public func coordinates(of chunk: Int) -> ArraySlice<UInt64> {
        coordinates[(chunk * rank)..<((chunk + 1) * rank)]
    }

    mutating func append<C: Collection>(coordinates coords: C, offset: UInt64, size: UInt64, filterMask: UInt32) where C.Element == UInt64 {
        coordinates.append(contentsOf: coords)
        offsets.append(offset)
        sizes.append(size)
        filterMasks.append(filterMask)
    }

    /// Appends array-index segments (emptying `segments`, each released once appended, so the
    /// index and the table are not both held in full) whose linear positions run over a grid of
    /// strides `down` whose first dimension is the dataset's `leadingDimension`; `base` is the
    /// file's base address, which the index's addresses are relative to.
    mutating func append(
        consuming segments: inout [ArrayIndexEntries], down: [UInt64], leadingDimension: Int, chunkBytes: UInt64, base: UInt64
    ) {
        reserve(count + segments.reduce(0) { $0 + $1.count })
        segments.reverse()
        while let segment = segments.popLast() {
            append(segment, down: down, leadingDimension: leadingDimension, chunkBytes: chunkBytes, base: base)
        }
    }

    private mutating func append(_ entries: ArrayIndexEntries, down: [UInt64], leadingDimension: Int, chunkBytes: UInt64, base: UInt64) {
        var linearCoordinates = [UInt64](repeating: 0, count: rank)
        let filtered = !entries.sizes.isEmpty
        for i in 0..<entries.count {
            var rest = entries.linear[i]
            for d in 0..<rank {
                linearCoordinates[d] = rest / down[d]
                rest %= down[d]
            }
            for d in 0..<rank {
                // Dimension d of the dataset is dimension d + 1 of the linearisation before the
                // leading one, d itself after it.
                let source = d == leadingDimension ? 0 : (d < leadingDimension ? d + 1 : d)
                coordinates.append(linearCoordinates[source])
            }
            offsets.append(base &+ entries.addresses[i])
            sizes.append(filtered ? entries.sizes[i] : chunkBytes)
            filterMasks.append(filtered ? entries.filterMasks[i] : 0)
        }
    }

    mutating func reserve(_ count: Int) {
        coordinates.reserveCapacity(count * rank)
        offsets.reserveCapacity(count)
        sizes.reserveCapacity(count)
        filterMasks.reserveCapacity(count)
    }

    /// Sorts chunks by grid position (row-major), the order Zarr keys and manifests use.
    mutating func sortByCoordinates() {
        let rank = self.rank
        let coords = coordinates
        // B-trees and chunk arrays usually list chunks in this order already: one pass, no copy.
        func precedes(_ a: Int, _ b: Int) -> Bool {
            for d in 0..<rank {
                let x = coords[a * rank + d], y = coords[b * rank + d]
                if x != y { return x < y }
            }
            return false
        }
        if count < 2 || (1..<count).allSatisfy({ !precedes($0, $0 - 1) }) { return }
        var order = Array(0..<count)
        order.sort(by: precedes)
        var sorted = ChunkTable(rank: rank)
        sorted.reserve(count)
        for i in order {
            sorted.append(coordinates: coords[(i * rank)..<((i + 1) * rank)], offset: offsets[i], size: sizes[i], filterMask: filterMasks[i])
        }
        self = sorted
    }
}

/// Enumerates the chunks of a chunked dataset from whichever index its layout names.
struct ChunkEnumerator {
    let context: FileContext
    let layout: Layout.Chunked
    let dataspace: Dataspace

    var rank: Int { layout.chunkShape.count }

    /// Chunks per dimension over the current extent.
    var gridShape: [UInt64] {
        zip(dataspace.dimensions, layout.chunkShape).map { dim, chunk in chunk == 0 ? 0 : dim / chunk + (dim % chunk == 0 ? 0 : 1) }
    }

    /// Chunks per dimension over the maximum extent (unlimited → current), which is what the
    /// array-based indexes linearise over.
    var maxGridShape: [UInt64] {
        zip(zip(dataspace.maxDimensions, dataspace.dimensions), layout.chunkShape).map { dims, chunk in
            let extent = dims.0 ?? dims.1
            return chunk == 0 ? 0 : extent / chunk + (extent % chunk == 0 ? 0 : 1)
        }
    }

    /// The index's first read, to announce before other work: the root of a v1 B-tree as
    /// `enumerate` will read it; nil for other indexes.
    var firstRead: ByteRange? {
        guard case .btreeV1(let address?) = layout.index, rank > 0 else { return nil }
        let expected = checkedProduct(gridShape) ?? UInt64.max
        return ByteRange(
            offset: address,
            length: max(
                BTreeV1.chunkRootFirstRead(
                    rank: rank, expectedChunks: expected,
                    offsetSize: context.offsetSize),
                8 + 2 * context.offsetSize))
    }

    func enumerate() async throws -> ChunkTable {
        guard layout.chunkShape.allSatisfy({ $0 > 0 }) else {
            throw HDF5Error(.corrupt, "data layout message", at: 0, "zero chunk dimension")
        }
        guard dataspace.kind == .simple, dataspace.dimensions.count == rank else {
            throw HDF5Error(
                .corrupt, "data layout message", at: 0,
                "chunk rank \(rank) does not match dataspace rank \(dataspace.dimensions.count)")
        }
        var table = ChunkTable(rank: rank)
        switch layout.index {
        case .btreeV1(let address):
            guard let address else { return table }
            let records = try await BTreeV1.chunks(
                at: address, rank: rank, expectedChunks: checkedProduct(gridShape) ?? UInt64.max,
                in: context)
            try checkCount(records.count)
            table.reserve(records.count)
            for record in records {
                var coords: [UInt64] = []
                for (offset, chunk) in zip(record.elementOffsets, layout.chunkShape) {
                    guard offset % chunk == 0 else {
                        throw HDF5Error(
                            .corrupt, "v1 B-tree chunk key", at: context.absolute(record.address),
                            "element offset \(offset) is not a multiple of chunk size \(chunk)")
                    }
                    coords.append(offset / chunk)
                }
                table.append(coordinates: coords, offset: context.absolute(record.address), size: UInt64(record.size), filterMask: record.filterMask)
            }
        case .singleChunk(let address, let filteredSize, let mask):
            guard let address else { return table }
            table.append(
                coordinates: [UInt64](repeating: 0, count: rank), offset: context.absolute(address),
                size: filteredSize ?? layout.chunkBytes, filterMask: mask)
        case .implicit(let address):
            guard let address else { return table }
            let grid = gridShape
            let down = downProducts(maxGridShape)
            // Every chunk of an implicit index is allocated, back to back: all must lie in the file.
            guard let total = checkedProduct(grid), let maxTotal = checkedProduct(maxGridShape),
                let span = maxTotal.multipliedReportingOverflow(by: layout.chunkBytes).overflow ? nil : maxTotal * layout.chunkBytes,
                context.absolute(address) <= context.fileSize, span <= context.fileSize - context.absolute(address)
            else {
                throw HDF5Error(
                    .corrupt, "implicit chunk index", at: context.absolute(address),
                    "chunks of \(maxGridShape) × \(layout.chunkBytes) bytes do not fit in the file")
            }
            try checkCount(Int(clamping: total))
            table.reserve(Int(total))
            var coords = [UInt64](repeating: 0, count: rank)
            for _ in 0..<total {
                var linear: UInt64 = 0
                for d in 0..<rank { linear &+= coords[d] &* down[d] }
                table.append(
                    coordinates: coords, offset: context.absolute(address) + linear * layout.chunkBytes,
                    size: layout.chunkBytes, filterMask: 0)
                increment(&coords, within: grid)
            }
        case .fixedArray(let address, _):
            guard let address else { return table }
            var segments = try await FixedArrayIndex.read(at: address, in: context)
            try checkCount(segments.reduce(0) { $0 + $1.count })
            table.append(consuming: &segments, down: downProducts(maxGridShape), leadingDimension: 0, chunkBytes: layout.chunkBytes, base: context.absolute(0))
        case .extensibleArray(let address, _, _, _, _, _):
            guard let address else { return table }
            var segments = try await ExtensibleArrayIndex.read(at: address, in: context)
            try checkCount(segments.reduce(0) { $0 + $1.count })
            guard let unlimited = dataspace.maxDimensions.firstIndex(where: { $0 == nil }) else {
                throw HDF5Error(.corrupt, "extensible array index", at: context.absolute(address), "dataset has no unlimited dimension")
            }
            // The extensible array linearises with the unlimited dimension first.
            var swizzled = maxGridShape
            swizzled.insert(swizzled.remove(at: unlimited), at: 0)
            table.append(
                consuming: &segments, down: downProducts(swizzled), leadingDimension: unlimited, chunkBytes: layout.chunkBytes, base: context.absolute(0))
        case .btreeV2(let address, _, _, _):
            guard let address else { return table }
            let contents = try await BTreeV2.records(at: address, in: context)
            try checkCount(contents.records.count)
            let o = context.offsetSize
            let sizeField = contents.recordSize - o - 4 - 8 * rank
            guard contents.type == 10 || contents.type == 11, contents.type == 10 || (sizeField >= 1 && sizeField <= 8) else {
                throw HDF5Error(
                    .corrupt, "v2 B-tree chunk index", at: context.absolute(address), "record type \(contents.type) of \(contents.recordSize) bytes")
            }
            table.reserve(contents.records.count)
            for record in contents.records {
                var cursor = context.cursor(record, at: context.absolute(address), "v2 B-tree chunk record")
                guard let chunkAddress = try cursor.address() else { continue }
                var size = layout.chunkBytes
                var mask: UInt32 = 0
                if contents.type == 11 {
                    size = try cursor.uint(size: sizeField)
                    mask = try cursor.u32()
                }
                var coords: [UInt64] = []
                for _ in 0..<rank { coords.append(try cursor.u64()) }
                table.append(coordinates: coords, offset: context.absolute(chunkAddress), size: size, filterMask: mask)
            }
        }
        return table
    }

    private func checkCount(_ count: Int) throws {
        if count > context.limits.maxChunksPerDataset {
            throw HDF5Error(.limitExceeded, "chunk index", at: 0, "\(count) chunks (limit \(context.limits.maxChunksPerDataset))")
        }
    }
}

func downProducts(_ shape: [UInt64]) -> [UInt64] {
    var down = [UInt64](repeating: 1, count: shape.count)
    var product: UInt64 = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) {
        down[d] = product
        product = product.multipliedReportingOverflow(by: max(shape[d], 1)).partialValue
    }
    return down
}

func increment(_ coords: inout [UInt64], within shape: [UInt64]) {
    var d = coords.count - 1
    while d >= 0 {
        coords[d] += 1
        if coords[d] < shape[d] { return }
        coords[d] = 0
        d -= 1
    }
}

/// One entry of a fixed or extensible array chunk index.
/// The allocated entries of one block or page of a fixed or extensible array chunk index, as
/// columns (16 bytes a chunk for unfiltered indexes). An index is read as a list of these, which
/// the chunk table takes in one at a time.
struct ArrayIndexEntries: Sendable {
    /// Elements whose blocks or pages are read in one round: the bytes of a round are all held
    /// until its parses finish (8 to 21 MiB at 8 to 21 bytes an element), and a 10-million-chunk
    /// index takes 10 rounds.
    static let elementsPerRound: UInt64 = 1 << 20

    /// Position in the index's linearised grid.
    var linear: [UInt64] = []
    var addresses: [UInt64] = []
    /// Stored sizes and filter masks of filtered chunks; empty for unfiltered indexes, whose
    /// chunks are all of the full chunk size.
    var sizes: [UInt64] = []
    var filterMasks: [UInt32] = []

    var count: Int { linear.count }

    mutating func reserve(_ count: Int) {
        linear.reserveCapacity(count)
        addresses.reserveCapacity(count)
    }

    /// `items` in consecutive groups whose `elements` add up to about `elementsPerRound`.
    static func rounds<Item>(_ items: [Item], elements: (Item) -> UInt64) -> [[Item]] {
        var groups: [[Item]] = []
        var current: [Item] = []
        var held: UInt64 = 0
        for item in items {
            if !current.isEmpty, held &+ elements(item) > elementsPerRound {
                groups.append(current)
                current = []
                held = 0
            }
            current.append(item)
            held &+= elements(item)
        }
        if !current.isEmpty { groups.append(current) }
        return groups
    }

    /// Parses one index element at `index`, appending it unless its chunk is unallocated.
    mutating func parse(_ cursor: inout ByteCursor, index: UInt64, clientID: UInt8, elementSize: Int) throws {
        let start = cursor.position
        let address = try cursor.address()
        var size: UInt64 = 0
        var mask: UInt32 = 0
        if clientID == 1 {
            let sizeField = elementSize - cursor.offsetSize - 4
            guard sizeField >= 1 && sizeField <= 8 else { throw cursor.error(.corrupt, "filtered element of \(elementSize) bytes") }
            size = try cursor.uint(size: sizeField)
            mask = try cursor.u32()
        }
        try cursor.seek(to: start + elementSize)
        guard let address else { return }
        linear.append(index)
        addresses.append(address)
        if clientID == 1 {
            sizes.append(size)
            filterMasks.append(mask)
        }
    }
}

/// Fixed array chunk index (`FAHD`/`FADB`), paged or not.
enum FixedArrayIndex {
    static func read(at address: UInt64, in context: FileContext) async throws -> [ArrayIndexEntries] {
        let o = context.offsetSize, l = context.lengthSize
        var header = try await context.read(address, 4 + 1 + 1 + 1 + 1 + l + o + 4, "fixed array header")
        try header.signature("FAHD")
        let version = try header.u8()
        guard version == 0 else { throw header.error(.corrupt, "fixed array version \(version)") }
        let clientID = try header.u8()
        let elementSize = Int(try header.u8())
        let pageBits = Int(try header.u8())
        let count = try header.length()
        let dataBlock = try header.address()
        try header.verifyChecksum(from: 0)
        guard clientID <= 1, elementSize >= o, pageBits < 32 else { throw header.error(.corrupt, "client \(clientID), element size \(elementSize)") }
        guard count <= UInt64(context.limits.maxChunksPerDataset), count <= context.fileSize / UInt64(elementSize) else {
            throw HDF5Error(
                .limitExceeded, "fixed array header", at: context.absolute(address),
                "\(count) elements of \(elementSize) bytes cannot be in a \(context.fileSize)-byte file")
        }
        guard let dataBlock, count > 0 else { return [] }
        let pageElements = UInt64(1) << UInt64(pageBits)
        let paged = count > pageElements
        let pageCount = paged ? Int((count + pageElements - 1) / pageElements) : 0
        let bitmapSize = paged ? (pageCount + 7) / 8 : 0
        let prefix = 4 + 1 + 1 + o + bitmapSize
        let unpagedSize = prefix + Int(count) * elementSize + 4
        var block = try await context.read(dataBlock, paged ? prefix + 4 : unpagedSize, "fixed array data block")
        try block.signature("FADB")
        let blockVersion = try block.u8()
        guard blockVersion == 0 else { throw block.error(.corrupt, "data block version \(blockVersion)") }
        try block.skip(1 + o)
        var results = ArrayIndexEntries()
        if !paged {
            results.reserve(Int(count))
            for index in 0..<count { try results.parse(&block, index: index, clientID: clientID, elementSize: elementSize) }
            try block.verifyChecksum(from: 0)
            return [results]
        }
        let bitmap = try block.take(bitmapSize)
        try block.verifyChecksum(from: 0)
        let pageBytes = Int(pageElements) * elementSize + 4
        let pages: [Int] = (0..<pageCount).filter { bitmap[$0 / 8] & (0x80 >> UInt8($0 % 8)) != 0 }
        var segments: [ArrayIndexEntries] = []
        for round in ArrayIndexEntries.rounds(pages, elements: { _ in pageElements }) {
            segments += try await context.map(round) { page -> ArrayIndexEntries in
                let first = UInt64(page) * pageElements
                let elements = min(pageElements, count - first)
                let pageAddress = dataBlock &+ UInt64(prefix + 4) &+ UInt64(page) &* UInt64(pageBytes)
                var cursor = try await context.read(pageAddress, Int(elements) * elementSize + 4, "fixed array data block page")
                var found = ArrayIndexEntries()
                found.reserve(Int(elements))
                for index in 0..<elements { try found.parse(&cursor, index: first + index, clientID: clientID, elementSize: elementSize) }
                try cursor.verifyChecksum(from: 0)
                return found
            }
        }
        return segments
    }
}

/// Extensible array chunk index (`EAHD`/`EAIB`/`EASB`/`EADB`).
enum ExtensibleArrayIndex {
    private struct SuperBlockInfo {
        var dataBlocks: Int
        var elementsPerDataBlock: UInt64
        var startIndex: UInt64
    }

    private struct Parameters: Sendable {
        var clientID: UInt8
        var elementSize: Int
        var arrayOffsetSize: Int
        var pageElements: UInt64
        var headerAddress: UInt64
    }

    static func read(at address: UInt64, in context: FileContext) async throws -> [ArrayIndexEntries] {
        let o = context.offsetSize, l = context.lengthSize
        var header = try await context.read(address, 4 + 1 + 1 + 6 + 6 * l + o + 4, "extensible array header")
        try header.signature("EAHD")
        let version = try header.u8()
        guard version == 0 else { throw header.error(.corrupt, "extensible array version \(version)") }
        let clientID = try header.u8()
        let elementSize = Int(try header.u8())
        let maxBits = Int(try header.u8())
        let indexElements = Int(try header.u8())
        let minDataElements = UInt64(try header.u8())
        let minPointers = Int(try header.u8())
        let pageBits = Int(try header.u8())
        for _ in 0..<4 { _ = try header.length() }
        let maxIndexSet = try header.length()
        _ = try header.length()
        let indexBlock = try header.address()
        try header.verifyChecksum(from: 0)
        guard clientID <= 1, elementSize >= o, maxBits > 0, maxBits <= 64, minDataElements > 0,
            minDataElements & (minDataElements - 1) == 0, minPointers > 0, minPointers & (minPointers - 1) == 0, pageBits < 32,
            log2Floor(minDataElements) <= maxBits
        else {
            throw HDF5Error(.corrupt, "extensible array header", at: context.absolute(address), "inconsistent creation parameters")
        }
        // A sparse array's unwritten blocks take no space, so the file's size does not bound this;
        // what the scan holds is bounded by the blocks it reads, each within the file.
        guard maxIndexSet <= UInt64(context.limits.maxChunksPerDataset) else {
            throw HDF5Error(.limitExceeded, "extensible array header", at: context.absolute(address), "\(maxIndexSet) elements")
        }
        guard let indexBlock, maxIndexSet > 0 else { return [] }

        let superBlockCount = 1 + maxBits - log2Floor(minDataElements)
        var infos: [SuperBlockInfo] = []
        var start: UInt64 = 0
        for u in 0..<superBlockCount {
            let blocks = 1 << (u / 2)
            let elements = (UInt64(1) << UInt64((u + 1) / 2)) * minDataElements
            infos.append(SuperBlockInfo(dataBlocks: blocks, elementsPerDataBlock: elements, startIndex: start))
            let (span, spanOverflow) = UInt64(blocks).multipliedReportingOverflow(by: elements)
            let (grown, overflow) = start.addingReportingOverflow(span)
            start = overflow || spanOverflow ? UInt64.max : grown
        }
        let indexSuperBlocks = 2 * log2Floor(UInt64(minPointers))
        let indexDataBlockAddresses = 2 * (minPointers - 1)
        let superBlockAddresses = max(0, superBlockCount - indexSuperBlocks)
        let parameters = Parameters(
            clientID: clientID, elementSize: elementSize, arrayOffsetSize: (maxBits + 7) / 8,
            pageElements: UInt64(1) << UInt64(pageBits), headerAddress: address)

        let indexSize = 4 + 1 + 1 + o + indexElements * elementSize + (indexDataBlockAddresses + superBlockAddresses) * o + 4
        var index = try await context.read(indexBlock, indexSize, "extensible array index block")
        try index.signature("EAIB")
        let indexVersion = try index.u8()
        guard indexVersion == 0 else { throw index.error(.corrupt, "index block version \(indexVersion)") }
        try index.skip(1 + o)
        var results = ArrayIndexEntries()
        for i in 0..<indexElements where UInt64(i) < maxIndexSet {
            try results.parse(&index, index: UInt64(i), clientID: clientID, elementSize: elementSize)
        }
        try index.seek(to: 4 + 1 + 1 + o + indexElements * elementSize)
        var dataBlocks: [DataBlockRequest] = []
        var slot = 0
        for u in 0..<min(indexSuperBlocks, superBlockCount) {
            for k in 0..<infos[u].dataBlocks {
                guard slot < indexDataBlockAddresses else { break }
                let blockAddress = try index.address()
                slot += 1
                let first = UInt64(indexElements) &+ infos[u].startIndex &+ UInt64(k) &* infos[u].elementsPerDataBlock
                if let blockAddress, first < maxIndexSet {
                    dataBlocks.append(
                        DataBlockRequest(address: blockAddress, firstIndex: first, elements: infos[u].elementsPerDataBlock, initializedPages: nil))
                }
            }
        }
        try index.seek(to: 4 + 1 + 1 + o + indexElements * elementSize + indexDataBlockAddresses * o)
        var superBlocks: [(address: UInt64, info: SuperBlockInfo)] = []
        for s in 0..<superBlockAddresses {
            let superAddress = try index.address()
            let info = infos[indexSuperBlocks + s]
            if let superAddress, info.startIndex < maxIndexSet { superBlocks.append((superAddress, info)) }
        }
        try index.verifyChecksum(from: 0)

        let fromSuperBlocks = try await context.map(superBlocks.map { SuperBlockRequest(address: $0.address, info: $0.info) }) { request in
            try await superBlockDataBlocks(request, indexElements: UInt64(indexElements), parameters: parameters, in: context)
        }
        for part in fromSuperBlocks { dataBlocks += part.filter { $0.firstIndex < maxIndexSet } }

        var segments = [results]
        for round in ArrayIndexEntries.rounds(dataBlocks, elements: \.elements) {
            let blockResults = try await context.map(round) { request in
                try await dataBlockElements(request, parameters: parameters, limit: maxIndexSet, in: context)
            }
            segments += blockResults.joined()
        }
        return segments
    }

    private struct SuperBlockRequest: Sendable {
        var address: UInt64
        var info: SuperBlockInfo
    }

    private struct DataBlockRequest: Sendable {
        var address: UInt64
        var firstIndex: UInt64
        var elements: UInt64
        /// The super block's page-initialisation bits (most significant bit first), where this
        /// block's pages start at bit `firstPageBit`; nil where no bitmask exists, and every page
        /// is then read.
        var initializedPages: [UInt8]?
        var firstPageBit = 0

        func isInitialized(page: Int) -> Bool {
            guard let initializedPages else { return true }
            let bit = firstPageBit + page
            return bit / 8 < initializedPages.count && initializedPages[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0
        }
    }

    private static func superBlockDataBlocks(
        _ request: SuperBlockRequest, indexElements: UInt64, parameters: Parameters,
        in context: FileContext
    ) async throws -> [DataBlockRequest] {
        let o = context.offsetSize
        let info = request.info
        let paged = info.elementsPerDataBlock > parameters.pageElements
        let pagesPerBlock = paged ? Int(info.elementsPerDataBlock / parameters.pageElements) : 0
        // One page-initialisation bitmask per data block, each rounded up to whole bytes.
        let bitmaskSize = (pagesPerBlock + 7) / 8
        let size = 4 + 1 + 1 + o + parameters.arrayOffsetSize + info.dataBlocks * bitmaskSize + info.dataBlocks * o + 4
        var cursor = try await context.read(request.address, size, "extensible array super block")
        try cursor.signature("EASB")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "super block version \(version)") }
        try cursor.skip(1 + o + parameters.arrayOffsetSize)
        // libhdf5 writes a page only once one of its elements is set; the pages left out are
        // never written, so their bytes are not a page (and fail its checksum). The bits run on
        // from one data block to the next (block k's pages start at bit k × pages); only the
        // buffer is rounded up, a whole byte per block.
        let bitmask: [UInt8]? = paged ? try cursor.take(info.dataBlocks * bitmaskSize) : nil
        var blocks: [DataBlockRequest] = []
        for k in 0..<info.dataBlocks {
            if let address = try cursor.address() {
                blocks.append(
                    DataBlockRequest(
                        address: address, firstIndex: indexElements &+ info.startIndex &+ UInt64(k) &* info.elementsPerDataBlock,
                        elements: info.elementsPerDataBlock, initializedPages: bitmask, firstPageBit: k * pagesPerBlock))
            }
        }
        try cursor.verifyChecksum(from: 0)
        return blocks
    }

    private static func dataBlockElements(
        _ request: DataBlockRequest, parameters: Parameters, limit: UInt64,
        in context: FileContext
    ) async throws -> [ArrayIndexEntries] {
        let o = context.offsetSize
        let prefix = 4 + 1 + 1 + o + parameters.arrayOffsetSize
        let paged = request.elements > parameters.pageElements
        let wanted = min(request.elements, limit - request.firstIndex)
        var results = ArrayIndexEntries()
        if !paged {
            var cursor = try await context.read(request.address, prefix + Int(request.elements) * parameters.elementSize + 4, "extensible array data block")
            try cursor.signature("EADB")
            let version = try cursor.u8()
            guard version == 0 else { throw cursor.error(.corrupt, "data block version \(version)") }
            try cursor.skip(1 + o + parameters.arrayOffsetSize)
            for i in 0..<request.elements {
                if i < wanted {
                    try results.parse(&cursor, index: request.firstIndex + i, clientID: parameters.clientID, elementSize: parameters.elementSize)
                } else {
                    try cursor.skip(parameters.elementSize)
                }
            }
            try cursor.verifyChecksum(from: 0)
            return [results]
        }
        var head = try await context.read(request.address, prefix + 4, "extensible array data block")
        try head.signature("EADB")
        try head.seek(to: prefix)
        try head.verifyChecksum(from: 0)
        let pageCount = Int(request.elements / parameters.pageElements)
        let pageBytes = Int(parameters.pageElements) * parameters.elementSize + 4
        let neededPages = Int(min(UInt64(pageCount), wanted / parameters.pageElements + 1))
        let pages = (0..<neededPages).filter { request.isInitialized(page: $0) }
        // A data block holds at most as many elements as a round: its pages are read at once.
        return try await context.map(pages) { page -> ArrayIndexEntries in
            let pageAddress = request.address + UInt64(prefix + 4) + UInt64(page * pageBytes)
            var cursor = try await context.read(pageAddress, pageBytes, "extensible array data block page")
            var found = ArrayIndexEntries()
            for i in 0..<parameters.pageElements {
                let index = UInt64(page) * parameters.pageElements + i
                if index < wanted {
                    try found.parse(&cursor, index: request.firstIndex + index, clientID: parameters.clientID, elementSize: parameters.elementSize)
                } else {
                    try cursor.skip(parameters.elementSize)
                }
            }
            try cursor.verifyChecksum(from: 0)
            return found
        }
    }
}
