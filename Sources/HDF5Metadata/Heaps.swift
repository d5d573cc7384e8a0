import ByteSource

/// The local heap of an old-style group: link names by offset.
struct LocalHeap {
    var data: [UInt8]
    var dataOrigin: UInt64

    static func read(at address: UInt64, in context: FileContext) async throws -> LocalHeap {
        var cursor = try await context.read(address, 8 + 2 * context.lengthSize + context.offsetSize, "local heap")
        try cursor.signature("HEAP")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "local heap version \(version)") }
        try cursor.skip(3)
        let size = try cursor.length()
        _ = try cursor.length()
        guard let dataAddress = try cursor.address() else { throw cursor.error(.corrupt, "undefined data segment address") }
        guard size <= UInt64(context.limits.maxStructureBytes) else { throw cursor.error(.limitExceeded, "local heap of \(size) bytes") }
        let data = try await context.read(dataAddress, Int(size), "local heap data")
        guard data.bytes.count == Int(size) else { throw data.error(.truncated, "local heap data of \(size) bytes") }
        return LocalHeap(data: data.bytes, dataOrigin: context.absolute(dataAddress))
    }

    func string(at offset: UInt64) throws -> String {
        guard offset < UInt64(data.count) else {
            throw HDF5Error(.corrupt, "local heap", at: dataOrigin, "name offset \(offset) beyond heap of \(data.count) bytes")
        }
        var cursor = ByteCursor(data, origin: dataOrigin, structure: "local heap", offsetSize: 8, lengthSize: 8)
        try cursor.seek(to: Int(offset))
        // A name may fill the heap, which is already read and bounded by the structure limit:
        // the heap's own size, not a fixed length, is what a name cannot exceed.
        return try cursor.cString(limit: data.count)
    }
}

/// A global heap collection (`GCOL`): variable-length data of attributes and datasets.
struct GlobalHeapCollection: Sendable {
    var objects: [UInt16: [UInt8]]

    static func read(at address: UInt64, in context: FileContext) async throws -> GlobalHeapCollection {
        var cursor = try await context.read(address, 8 + context.lengthSize, "global heap collection")
        try cursor.signature("GCOL")
        let version = try cursor.u8()
        guard version == 1 else { throw cursor.error(.corrupt, "global heap version \(version)") }
        try cursor.skip(3)
        let size = try cursor.length()
        guard size >= UInt64(8 + context.lengthSize), size <= UInt64(context.limits.maxStructureBytes) else {
            throw cursor.error(.limitExceeded, "global heap collection of \(size) bytes")
        }
        var whole = try await context.read(address, Int(size), "global heap collection")
        try whole.skip(8 + context.lengthSize)
        var objects: [UInt16: [UInt8]] = [:]
        while whole.remaining >= 8 + context.lengthSize {
            let index = try whole.u16()
            if index == 0 { break }
            try whole.skip(6)
            let objectSize = try whole.length()
            guard objectSize <= UInt64(whole.remaining) else { throw whole.error(.truncated, "heap object \(index) of \(objectSize) bytes") }
            objects[index] = try whole.take(Int(objectSize))
            try whole.align(to: 8)
        }
        return GlobalHeapCollection(objects: objects)
    }
}

extension FileContext {
    func globalHeapObject(collection address: UInt64, index: UInt32) async throws -> [UInt8] {
        let collection = try await globalHeapCollection(at: address)
        guard index <= UInt32(UInt16.max), let bytes = collection.objects[UInt16(index)] else {
            throw HDF5Error(.corrupt, "global heap collection", at: absolute(address), "no object with index \(index)")
        }
        return bytes
    }
}

/// A fractal heap (`FRHP`): dense link and attribute storage and the shared-message heap.
struct FractalHeap: Sendable {
    let context: FileContext
    let address: UInt64
    let heapIDLength: Int
    let filterInfoLength: Int
    let checksumsDirectBlocks: Bool
    let maxManagedObjectSize: UInt32
    let hugeObjectsBTree: UInt64?
    let tableWidth: Int
    let startingBlockSize: UInt64
    let maxDirectBlockSize: UInt64
    let maxHeapSizeBits: Int
    let rootAddress: UInt64?
    let currentRows: Int

    var heapOffsetSize: Int { (maxHeapSizeBits + 7) / 8 }
    var heapLengthSize: Int {
        min((log2Floor(maxDirectBlockSize) + 7) / 8, encodedSize(of: UInt64(maxManagedObjectSize)))
    }
    var firstRowBits: Int { log2Floor(startingBlockSize) + log2Floor(UInt64(tableWidth)) }
    var maxDirectRows: Int { log2Floor(maxDirectBlockSize) - log2Floor(startingBlockSize) + 2 }

    func rowBlockSize(_ row: Int) -> UInt64 { row == 0 ? startingBlockSize : startingBlockSize << UInt64(row - 1) }
    func rowBlockOffset(_ row: Int) -> UInt64 { row == 0 ? 0 : (startingBlockSize * UInt64(tableWidth)) << UInt64(row - 1) }

    static func open(at address: UInt64, in context: FileContext) async throws -> FractalHeap {
        let o = context.offsetSize, l = context.lengthSize
        let fixedSize = 4 + 1 + 2 + 2 + 1 + 4 + l + o + l + o + 8 * l + 2 + l + l + 2 + 2 + o + 2
        var cursor = try await context.read(address, fixedSize + l + 4 + 4 + 256, "fractal heap header")
        try cursor.signature("FRHP")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "fractal heap version \(version)") }
        let idLength = Int(try cursor.u16())
        let filterLength = Int(try cursor.u16())
        let flags = try cursor.u8()
        let maxManaged = try cursor.u32()
        _ = try cursor.length()
        let hugeTree = try cursor.address()
        _ = try cursor.length()
        _ = try cursor.address()
        for _ in 0..<8 { _ = try cursor.length() }
        let width = Int(try cursor.u16())
        let startSize = try cursor.length()
        let maxDirect = try cursor.length()
        let maxHeapBits = Int(try cursor.u16())
        _ = try cursor.u16()
        let root = try cursor.address()
        let rows = Int(try cursor.u16())
        if filterLength > 0 {
            _ = try cursor.length()
            _ = try cursor.u32()
            if cursor.remaining < filterLength + 4 {
                cursor = try await context.read(address, fixedSize + l + 4 + filterLength + 4, "fractal heap header")
                try cursor.seek(to: fixedSize + l + 4)
            }
            try cursor.skip(filterLength)
        }
        try cursor.verifyChecksum(from: 0)
        guard width > 0, width & (width - 1) == 0, width <= 65536,
            startSize > 0, startSize & (startSize - 1) == 0,
            maxDirect >= startSize, maxDirect & (maxDirect - 1) == 0, maxDirect <= UInt64(context.limits.maxStructureBytes),
            maxHeapBits > 0, maxHeapBits <= 64, rows <= 64
        else {
            throw HDF5Error(.corrupt, "fractal heap header", at: context.absolute(address), "inconsistent doubling table")
        }
        if filterLength > 0 {
            throw HDF5Error(.unsupported, "fractal heap header", at: context.absolute(address), "filtered fractal heap blocks")
        }
        return FractalHeap(
            context: context, address: address, heapIDLength: idLength, filterInfoLength: filterLength,
            checksumsDirectBlocks: flags & 0x02 != 0, maxManagedObjectSize: maxManaged,
            hugeObjectsBTree: hugeTree, tableWidth: width, startingBlockSize: startSize,
            maxDirectBlockSize: maxDirect, maxHeapSizeBits: maxHeapBits, rootAddress: root, currentRows: rows)
    }

    func object(id: [UInt8]) async throws -> [UInt8] {
        let position = context.absolute(address)
        guard let first = id.first else { throw HDF5Error(.corrupt, "fractal heap ID", at: position, "empty heap ID") }
        let type = (first >> 4) & 0x03
        var cursor = context.cursor(id, at: position, "fractal heap ID")
        try cursor.skip(1)
        switch type {
        case 0:
            let offset = try cursor.uint(size: heapOffsetSize)
            let length = try cursor.uint(size: heapLengthSize)
            return try await managedObject(offset: offset, length: length)
        case 1:
            return try await hugeObject(id: id)
        case 2:
            if heapIDLength <= 18 {
                let length = Int(first & 0x0f) + 1
                return try cursor.take(length)
            }
            let length = (Int(first & 0x0f) << 8 | Int(try cursor.u8())) + 1
            return try cursor.take(length)
        default:
            throw HDF5Error(.corrupt, "fractal heap ID", at: position, "heap ID type \(type)")
        }
    }

    /// A direct block of the heap: where it is and which heap offsets it holds.
    struct DirectBlock: Hashable, Sendable {
        var address: UInt64
        var heapOffset: UInt64
        var size: UInt64
    }

    /// A direct block's bytes after its signature, version and checksum were checked, with the
    /// size of its header (objects start after it).
    struct CheckedBlock: Sendable {
        var bytes: [UInt8]
        var headerSize: Int
    }

    private func managedObject(offset: UInt64, length: UInt64) async throws -> [UInt8] {
        let block = try await directBlock(holding: offset, length: length)
        return try object(at: offset, length: length, in: try await checkedBlock(block), block: block)
    }

    /// The objects of many heap IDs (dense links or attributes of one object): each direct
    /// block is read and checked once, and distinct blocks are fetched concurrently, instead of
    /// one read and one checksum per object.
    func objects(ids: [[UInt8]]) async throws -> [[UInt8]] {
        enum Plan {
            case ready([UInt8])
            case managed(DirectBlock, offset: UInt64, length: UInt64)
            case huge([UInt8])
        }
        let position = context.absolute(address)
        var plans: [Plan] = []
        plans.reserveCapacity(ids.count)
        var blocks: [DirectBlock] = []
        var seen = Set<DirectBlock>()
        for id in ids {
            guard let first = id.first else { throw HDF5Error(.corrupt, "fractal heap ID", at: position, "empty heap ID") }
            switch (first >> 4) & 0x03 {
            case 0:
                var cursor = context.cursor(id, at: position, "fractal heap ID")
                try cursor.skip(1)
                let offset = try cursor.uint(size: heapOffsetSize)
                let length = try cursor.uint(size: heapLengthSize)
                let block = try await directBlock(holding: offset, length: length)
                if seen.insert(block).inserted { blocks.append(block) }
                plans.append(.managed(block, offset: offset, length: length))
            case 1:
                plans.append(.huge(id))
            default:
                plans.append(.ready(try await object(id: id)))
            }
        }
        let checked = try await context.map(blocks) { block in try await checkedBlock(block) }
        let byBlock = Dictionary(uniqueKeysWithValues: zip(blocks, checked))
        var out: [[UInt8]] = []
        out.reserveCapacity(plans.count)
        for plan in plans {
            switch plan {
            case .ready(let bytes): out.append(bytes)
            case .managed(let block, let offset, let length): out.append(try object(at: offset, length: length, in: byBlock[block]!, block: block))
            case .huge(let id): out.append(try await hugeObject(id: id))
            }
        }
        return out
    }

    /// Walks the indirect blocks to the direct block holding heap `offset`.
    private func directBlock(holding offset: UInt64, length: UInt64) async throws -> DirectBlock {
        guard let root = rootAddress else {
            throw HDF5Error(.corrupt, "fractal heap", at: context.absolute(address), "managed object in an empty heap")
        }
        guard length <= maxDirectBlockSize else {
            throw HDF5Error(.corrupt, "fractal heap", at: context.absolute(address), "managed object of \(length) bytes exceeds block size")
        }
        if currentRows == 0 {
            return DirectBlock(address: root, heapOffset: 0, size: startingBlockSize)
        }
        var iblock = root
        var iblockOffset: UInt64 = 0
        var rows = currentRows
        for _ in 0..<context.limits.maxDepth {
            let relative = offset &- iblockOffset
            let row: Int
            let column: UInt64
            if relative < startingBlockSize * UInt64(tableWidth) {
                row = 0
                column = relative / startingBlockSize
            } else {
                let high = log2Floor(relative)
                row = high - firstRowBits + 1
                column = (relative - (UInt64(1) << UInt64(high))) / rowBlockSize(row)
            }
            guard row < rows, column < UInt64(tableWidth) else {
                throw HDF5Error(.corrupt, "fractal heap indirect block", at: context.absolute(iblock), "heap offset \(offset) outside the block")
            }
            let entries = try await indirectBlockEntries(at: iblock, rows: rows)
            let entry = row * tableWidth + Int(column)
            let childOffset = iblockOffset + rowBlockOffset(row) + column * rowBlockSize(row)
            if row < maxDirectRows {
                guard entry < entries.direct.count, let block = entries.direct[entry] else {
                    throw HDF5Error(.corrupt, "fractal heap indirect block", at: context.absolute(iblock), "heap offset \(offset) in an unallocated block")
                }
                return DirectBlock(address: block, heapOffset: childOffset, size: rowBlockSize(row))
            }
            let index = entry - maxDirectRows * tableWidth
            guard index >= 0, index < entries.indirect.count, let child = entries.indirect[index] else {
                throw HDF5Error(.corrupt, "fractal heap indirect block", at: context.absolute(iblock), "heap offset \(offset) in an unallocated block")
            }
            iblock = child
            iblockOffset = childOffset
            rows = log2Floor(rowBlockSize(row)) - firstRowBits + 1
        }
        throw HDF5Error(.limitExceeded, "fractal heap", at: context.absolute(address), "indirect blocks nested deeper than \(context.limits.maxDepth)")
    }

    private func indirectBlockEntries(at block: UInt64, rows: Int) async throws -> (direct: [UInt64?], indirect: [UInt64?]) {
        let directCount = min(rows, maxDirectRows) * tableWidth
        let indirectCount = rows > maxDirectRows ? (rows - maxDirectRows) * tableWidth : 0
        let size = 4 + 1 + context.offsetSize + heapOffsetSize + (directCount + indirectCount) * context.offsetSize + 4
        var cursor = try await context.read(block, size, "fractal heap indirect block")
        try cursor.signature("FHIB")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "indirect block version \(version)") }
        try cursor.skip(context.offsetSize + heapOffsetSize)
        var direct: [UInt64?] = []
        direct.reserveCapacity(directCount)
        for _ in 0..<directCount { direct.append(try cursor.address()) }
        var indirect: [UInt64?] = []
        for _ in 0..<indirectCount { indirect.append(try cursor.address()) }
        try cursor.verifyChecksum(from: 0)
        return (direct, indirect)
    }

    private func checkedBlock(_ block: DirectBlock) async throws -> CheckedBlock {
        var cursor = try await context.read(block.address, Int(block.size), "fractal heap direct block")
        guard cursor.bytes.count == Int(block.size) else { throw cursor.error(.truncated, "direct block of \(block.size) bytes") }
        try cursor.signature("FHDB")
        let version = try cursor.u8()
        guard version == 0 else { throw cursor.error(.corrupt, "direct block version \(version)") }
        try cursor.skip(context.offsetSize + heapOffsetSize)
        if checksumsDirectBlocks {
            let checksumPosition = cursor.position
            var zeroed = cursor.bytes
            for i in checksumPosition..<(checksumPosition + 4) { zeroed[i] = 0 }
            let computed = Lookup3.hash(zeroed)
            let stored = try cursor.u32()
            guard stored == computed else {
                throw HDF5Error(
                    .checksumMismatch, "fractal heap direct block", at: context.absolute(block.address),
                    "stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))")
            }
        }
        return CheckedBlock(bytes: cursor.bytes, headerSize: cursor.position)
    }

    private func object(at offset: UInt64, length: UInt64, in checked: CheckedBlock, block: DirectBlock) throws -> [UInt8] {
        let within = offset &- block.heapOffset
        guard offset >= block.heapOffset, within + length <= block.size, Int(within) >= checked.headerSize,
            Int(within + length) <= checked.bytes.count
        else {
            throw HDF5Error(
                .corrupt, "fractal heap direct block", at: context.absolute(block.address),
                "object at heap offset \(offset) (\(length) bytes) outside the block")
        }
        return Array(checked.bytes[Int(within)..<Int(within + length)])
    }

    private func hugeObject(id: [UInt8]) async throws -> [UInt8] {
        let position = context.absolute(address)
        var cursor = context.cursor(id, at: position, "fractal heap huge object ID")
        try cursor.skip(1)
        if heapIDLength >= 1 + context.offsetSize + context.lengthSize {
            guard let objectAddress = try cursor.address() else { throw cursor.error(.corrupt, "undefined huge object address") }
            let length = try cursor.length()
            let data = try await context.read(objectAddress, Int(min(length, UInt64(Int.max))), "fractal heap huge object")
            guard UInt64(data.bytes.count) == length else { throw data.error(.truncated, "huge object of \(length) bytes") }
            return data.bytes
        }
        let key = try cursor.uint(size: min(heapIDLength - 1, context.lengthSize))
        guard let tree = hugeObjectsBTree else { throw HDF5Error(.corrupt, "fractal heap", at: position, "huge object without a huge-object B-tree") }
        let records = try await BTreeV2.records(at: tree, in: context)
        for record in records.records {
            var r = context.cursor(record, at: position, "huge object record")
            guard let objectAddress = try r.address() else { continue }
            let length = try r.length()
            let recordID = try r.length()
            if recordID == key {
                let data = try await context.read(objectAddress, Int(min(length, UInt64(Int.max))), "fractal heap huge object")
                guard UInt64(data.bytes.count) == length else { throw data.error(.truncated, "huge object of \(length) bytes") }
                return data.bytes
            }
        }
        throw HDF5Error(.corrupt, "fractal heap", at: position, "huge object \(key) not found")
    }
}
