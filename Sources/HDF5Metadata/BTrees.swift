import ByteSource

/// Version 1 B-trees (`TREE`): old-style group members and layout-v1..3 chunk indexes.
enum BTreeV1 {
    struct ChunkRecord {
        var size: UInt32
        var filterMask: UInt32
        var elementOffsets: [UInt64]
        var address: UInt64
    }

    /// Walks a group B-tree and returns the addresses of its symbol-table nodes, in key order.
    static func groupNodes(at address: UInt64, in context: FileContext) async throws -> [UInt64] {
        let leaves: [Leaf<Int>] = try await walk(
            at: address, type: 0, keySize: context.lengthSize, expectedLevel: nil, depth: 0,
            visited: VisitedNodes("v1 B-tree"), in: context
        ) { _, _ in nil }
        return leaves.map(\.address)
    }

    /// Every chunk of a chunked dataset with a v1 B-tree index (`rank` without the element dim).
    /// `expectedChunks` sizes the first read of the root: a dataset with few chunks has a
    /// root node of a few hundred bytes, and reading exactly that saves bandwidth.
    static func chunks(at address: UInt64, rank: Int, expectedChunks: UInt64, in context: FileContext) async throws -> [ChunkRecord] {
        let keySize = 8 + 8 * (rank + 1)
        let firstRead = chunkRootFirstRead(rank: rank, expectedChunks: expectedChunks, offsetSize: context.offsetSize)
        return try await walk(
            at: address, type: 1, keySize: keySize, expectedLevel: nil, depth: 0, firstRead: firstRead,
            visited: VisitedNodes("v1 B-tree"), in: context
        ) { key, childAddress in
            var cursor = key
            let size = try cursor.u32()
            let mask = try cursor.u32()
            var offsets: [UInt64] = []
            offsets.reserveCapacity(rank)
            for _ in 0..<rank { offsets.append(try cursor.u64()) }
            return ChunkRecord(size: size, filterMask: mask, elementOffsets: offsets, address: childAddress)
        }.compactMap(\.record)
    }

    /// Bytes read first at the root of a chunk B-tree: the whole node when it holds few chunks.
    static func chunkRootFirstRead(rank: Int, expectedChunks: UInt64, offsetSize: Int) -> Int {
        let keySize = 8 + 8 * (rank + 1)
        let entries = Int(min(expectedChunks, 64))
        return 8 + 2 * offsetSize + entries * (keySize + offsetSize) + keySize
    }

    private struct Leaf<Record: Sendable>: Sendable {
        var address: UInt64
        var record: Record?
    }

    private static func walk<Record: Sendable>(
        at address: UInt64, type: UInt8, keySize: Int, expectedLevel: Int?, depth: Int, firstRead: Int? = nil,
        visited: VisitedNodes,
        in context: FileContext, leaf: @escaping @Sendable (ByteCursor, UInt64) throws -> Record?
    ) async throws -> [Leaf<Record>] {
        try visited.claim(address, in: context)
        guard depth < context.limits.maxDepth else {
            throw HDF5Error(.limitExceeded, "v1 B-tree", at: context.absolute(address), "deeper than \(context.limits.maxDepth) levels")
        }
        let o = context.offsetSize
        let headerSize = 8 + 2 * o
        var cursor = try await context.read(address, max(firstRead ?? context.policy.btreeNodeFirstRead, 8 + 2 * o), "v1 B-tree node")
        try cursor.signature("TREE")
        let nodeType = try cursor.u8()
        guard nodeType == type else { throw cursor.error(.corrupt, "node type \(nodeType), expected \(type)") }
        let level = Int(try cursor.u8())
        if let expectedLevel, level != expectedLevel {
            throw cursor.error(.corrupt, "node level \(level), expected \(expectedLevel)")
        }
        let entries = Int(try cursor.u16())
        let needed = headerSize + entries * (keySize + o) + keySize
        if cursor.bytes.count < needed {
            cursor = try await context.read(address, needed, "v1 B-tree node")
            guard cursor.bytes.count == needed else { throw cursor.error(.truncated, "node with \(entries) entries") }
        }
        try cursor.seek(to: headerSize)
        var children: [(key: ByteCursor, address: UInt64)] = []
        children.reserveCapacity(entries)
        for _ in 0..<entries {
            let keyStart = cursor.position
            try cursor.skip(keySize)
            var key = cursor
            try key.seek(to: keyStart)
            guard let child = try cursor.address() else { throw cursor.error(.corrupt, "undefined child address") }
            children.append((key, child))
        }
        if level == 0 {
            return try children.map { Leaf(address: $0.address, record: try leaf($0.key, $0.address)) }
        }
        context.prefetch(children.map(\.address), length: min(context.policy.btreeNodeFirstRead, needed))
        let nested = try await context.map(children.map(\.address)) { child in
            try await walk(
                at: child, type: type, keySize: keySize, expectedLevel: level - 1, depth: depth + 1, visited: visited,
                in: context, leaf: leaf)
        }
        return nested.flatMap { $0 }
    }
}

/// Symbol-table nodes (`SNOD`) of old-style groups.
enum SymbolTableNode {
    struct Entry {
        var nameOffset: UInt64
        var objectAddress: UInt64?
        var cacheType: UInt32
        var scratch: [UInt8]
    }

    static func entries(at address: UInt64, in context: FileContext) async throws -> [Entry] {
        let entrySize = 2 * context.offsetSize + 24
        var cursor = try await context.read(address, 8, "symbol table node")
        try cursor.signature("SNOD")
        let version = try cursor.u8()
        guard version == 1 else { throw cursor.error(.corrupt, "symbol table node version \(version)") }
        try cursor.skip(1)
        let count = Int(try cursor.u16())
        cursor = try await context.read(address, 8 + count * entrySize, "symbol table node")
        guard cursor.bytes.count == 8 + count * entrySize else { throw cursor.error(.truncated, "node with \(count) entries") }
        try cursor.seek(to: 8)
        var entries: [Entry] = []
        for _ in 0..<count {
            let name = try cursor.uint(size: context.offsetSize)
            let object = try cursor.address()
            let cacheType = try cursor.u32()
            try cursor.skip(4)
            let scratch = try cursor.take(16)
            entries.append(Entry(nameOffset: name, objectAddress: object, cacheType: cacheType, scratch: scratch))
        }
        return entries
    }
}

/// Version 2 B-trees (`BTHD`/`BTIN`/`BTLF`): dense links, dense attributes, chunk indexes.
enum BTreeV2 {
    struct Contents {
        var type: UInt8
        var recordSize: Int
        var records: [[UInt8]]
    }

    private struct Shape: Sendable {
        var type: UInt8
        var nodeSize: Int
        var recordSize: Int
        var maxRecordCountSize: Int
        /// Bytes of the "total records below" field for a child pointer of a node at each depth.
        var cumulativeCountSize: [Int]
    }

    static func records(at address: UInt64, in context: FileContext) async throws -> Contents {
        let o = context.offsetSize, l = context.lengthSize
        var cursor = try await context.read(address, 4 + 1 + 1 + 4 + 2 + 2 + 1 + 1 + o + 2 + l + 4, "v2 B-tree header")
        try cursor.signature("BTHD")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "v2 B-tree version \(version)") }
        let type = try cursor.u8()
        let nodeSize = Int(try cursor.u32())
        let recordSize = Int(try cursor.u16())
        let depth = Int(try cursor.u16())
        _ = try cursor.u8()
        _ = try cursor.u8()
        let root = try cursor.address()
        let rootCount = Int(try cursor.u16())
        let total = try cursor.length()
        try cursor.verifyChecksum(from: 0)
        guard nodeSize >= 16, nodeSize <= context.limits.maxStructureBytes, recordSize > 0, recordSize < nodeSize else {
            throw HDF5Error(.corrupt, "v2 B-tree header", at: context.absolute(address), "node size \(nodeSize), record size \(recordSize)")
        }
        guard depth <= context.limits.maxDepth else {
            throw HDF5Error(.limitExceeded, "v2 B-tree header", at: context.absolute(address), "depth \(depth)")
        }
        guard let root, total > 0 else { return Contents(type: type, recordSize: recordSize, records: []) }

        let prefix = 10
        let leafMax = (nodeSize - prefix) / recordSize
        let maxCountSize = encodedSize(of: UInt64(leafMax))
        var cumulative = [UInt64(leafMax)]
        var cumulativeSizes = [0]
        if depth > 0 {
            for level in 1...depth {
                let pointerSize = o + maxCountSize + (level > 1 ? cumulativeSizes[level - 1] : 0)
                let maxRecords = (nodeSize - (prefix + pointerSize)) / (recordSize + pointerSize)
                guard maxRecords > 0 else {
                    throw HDF5Error(.corrupt, "v2 B-tree header", at: context.absolute(address), "node size too small for depth \(depth)")
                }
                let (product, overflow1) = UInt64(maxRecords + 1).multipliedReportingOverflow(by: cumulative[level - 1])
                let (sum, overflow2) = product.addingReportingOverflow(UInt64(maxRecords))
                cumulative.append(overflow1 || overflow2 ? UInt64.max : sum)
                cumulativeSizes.append(encodedSize(of: cumulative[level]))
            }
        }
        let shape = Shape(
            type: type, nodeSize: nodeSize, recordSize: recordSize, maxRecordCountSize: maxCountSize,
            cumulativeCountSize: cumulativeSizes)
        let records = try await node(at: root, depth: depth, count: rootCount, shape: shape, visited: VisitedNodes("v2 B-tree"), in: context)
        return Contents(type: type, recordSize: recordSize, records: records)
    }

    private static func node(
        at address: UInt64, depth: Int, count: Int, shape: Shape, visited: VisitedNodes,
        in context: FileContext
    ) async throws -> [[UInt8]] {
        try visited.claim(address, in: context)
        let isLeaf = depth == 0
        var cursor = try await context.read(address, shape.nodeSize, isLeaf ? "v2 B-tree leaf node" : "v2 B-tree internal node")
        try cursor.signature(isLeaf ? "BTLF" : "BTIN")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "node version \(version)") }
        let type = try cursor.u8()
        guard type == shape.type else { throw cursor.error(.corrupt, "node type \(type), header says \(shape.type)") }
        var records: [[UInt8]] = []
        records.reserveCapacity(count)
        for _ in 0..<count { records.append(try cursor.take(shape.recordSize)) }
        if isLeaf {
            try cursor.verifyChecksum(from: 0)
            return records
        }
        var children: [(UInt64, Int)] = []
        for _ in 0...count {
            guard let child = try cursor.address() else { throw cursor.error(.corrupt, "undefined child address") }
            let childCount = try cursor.count(size: shape.maxRecordCountSize, limit: Int(UInt16.max), "child record count")
            if depth > 1 { _ = try cursor.uint(size: shape.cumulativeCountSize[depth - 1]) }
            children.append((child, childCount))
        }
        try cursor.verifyChecksum(from: 0)
        context.prefetch(children.map(\.0), length: shape.nodeSize)
        let nested = try await context.map(children) { child in
            try await node(at: child.0, depth: depth - 1, count: child.1, shape: shape, visited: visited, in: context)
        }
        var ordered: [[UInt8]] = []
        for (index, part) in nested.enumerated() {
            ordered += part
            if index < records.count { ordered.append(records[index]) }
        }
        return ordered
    }
}
