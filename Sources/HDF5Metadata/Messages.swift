/// Header message type numbers (HDF5 File Format Specification, section IV.A.2).
enum MessageType: UInt16 {
    case nil_ = 0x0000
    case dataspace = 0x0001
    case linkInfo = 0x0002
    case datatype = 0x0003
    case fillValueOld = 0x0004
    case fillValue = 0x0005
    case link = 0x0006
    case externalFiles = 0x0007
    case layout = 0x0008
    case bogus = 0x0009
    case groupInfo = 0x000A
    case filterPipeline = 0x000B
    case attribute = 0x000C
    case comment = 0x000D
    case modificationTimeOld = 0x000E
    case sharedMessageTable = 0x000F
    case continuation = 0x0010
    case symbolTable = 0x0011
    case modificationTime = 0x0012
    case btreeK = 0x0013
    case driverInfo = 0x0014
    case attributeInfo = 0x0015
    case referenceCount = 0x0016
    case fileSpaceInfo = 0x0017
}

public struct Dataspace: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        case scalar, simple, null
    }

    public var kind: Kind
    public var dimensions: [UInt64]
    /// `nil` entries are unlimited.
    public var maxDimensions: [UInt64?]

    public var elementCount: UInt64 {
        switch kind {
        case .null: return 0
        case .scalar: return 1
        case .simple: return checkedProduct(dimensions) ?? UInt64.max
        }
    }

    static func parse(_ cursor: inout ByteCursor) throws -> Dataspace {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        let rank = Int(try cursor.u8())
        let flags = try cursor.u8()
        guard rank <= 32 else { throw HDF5Error(.corrupt, "dataspace message", at: start, "rank \(rank) (HDF5 allows 32)") }
        var kind: Kind
        switch version {
        case 1:
            try cursor.skip(5)
            kind = rank == 0 ? .scalar : .simple
        case 2:
            let type = try cursor.u8()
            switch type {
            case 0: kind = .scalar
            case 1: kind = .simple
            case 2: kind = .null
            default: throw HDF5Error(.corrupt, "dataspace message", at: start, "dataspace type \(type)")
            }
        default:
            throw HDF5Error(.corrupt, "dataspace message", at: start, "dataspace version \(version)")
        }
        // Every dataset and attribute has a dataspace, parsed more than once: arrays sized once.
        var dims: [UInt64] = []
        dims.reserveCapacity(rank)
        for _ in 0..<rank { dims.append(try cursor.length()) }
        var maxDims: [UInt64?] = dims.map { $0 }
        if flags & 1 != 0 {
            maxDims.removeAll(keepingCapacity: true)
            let unlimited = ByteCursor.undefined(cursor.lengthSize)
            for _ in 0..<rank {
                let value = try cursor.length()
                maxDims.append(value == unlimited ? nil : value)
            }
        }
        if kind != .simple { dims = []; maxDims = [] }
        return Dataspace(kind: kind, dimensions: dims, maxDimensions: maxDims)
    }
}

public struct FillValue: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        case undefined
        case `default`
        case userDefined = "user_defined"
    }

    public enum AllocationTime: String, Sendable, Equatable {
        case early, late, incremental
    }

    public enum WriteTime: String, Sendable, Equatable {
        case alloc, never, ifset
    }

    public var status: Status
    public var allocationTime: AllocationTime
    public var writeTime: WriteTime
    /// The fill value in the dataset's file type; `nil` when undefined or default (zeros).
    public var bytes: [UInt8]?

    static let unset = FillValue(status: .default, allocationTime: .late, writeTime: .ifset, bytes: nil)

    /// libhdf5's allocation time for a dataset whose header does not store one.
    static func defaultAllocationTime(for layout: Layout) -> AllocationTime {
        switch layout {
        case .compact: return .early
        case .chunked, .virtual: return .incremental
        case .contiguous: return .late
        }
    }

    static func parseOld(_ cursor: inout ByteCursor) throws -> FillValue {
        let size = Int(try cursor.u32())
        let bytes = try cursor.take(size)
        return FillValue(
            status: size > 0 ? .userDefined : .default, allocationTime: .late, writeTime: .ifset,
            bytes: size > 0 ? bytes : nil)
    }

    static func parse(_ cursor: inout ByteCursor) throws -> FillValue {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        func allocation(_ value: UInt8) throws -> AllocationTime {
            switch value {
            case 1: return .early
            case 2: return .late
            case 3: return .incremental
            default: throw HDF5Error(.corrupt, "fill value message", at: start, "allocation time \(value)")
            }
        }
        func write(_ value: UInt8) throws -> WriteTime {
            switch value {
            case 0: return .alloc
            case 1: return .never
            case 2: return .ifset
            default: throw HDF5Error(.corrupt, "fill value message", at: start, "fill time \(value)")
            }
        }
        switch version {
        case 1, 2:
            let alloc = try allocation(try cursor.u8())
            let time = try write(try cursor.u8())
            let defined = try cursor.u8()
            if version == 1 || defined != 0 {
                let rawSize = try cursor.u32()
                if rawSize == UInt32.max {
                    return FillValue(status: .undefined, allocationTime: alloc, writeTime: time, bytes: nil)
                }
                let size = Int(rawSize)
                let bytes = try cursor.take(size)
                if defined == 0 && version == 1 {
                    return FillValue(status: .undefined, allocationTime: alloc, writeTime: time, bytes: nil)
                }
                return FillValue(
                    status: size > 0 ? .userDefined : .default, allocationTime: alloc, writeTime: time,
                    bytes: size > 0 ? bytes : nil)
            }
            return FillValue(status: .undefined, allocationTime: alloc, writeTime: time, bytes: nil)
        case 3:
            let flags = try cursor.u8()
            let alloc = try allocation(flags & 0x03)
            let time = try write((flags >> 2) & 0x03)
            if flags & 0x10 != 0 {
                return FillValue(status: .undefined, allocationTime: alloc, writeTime: time, bytes: nil)
            }
            if flags & 0x20 != 0 {
                let size = Int(try cursor.u32())
                let bytes = try cursor.take(size)
                return FillValue(
                    status: size > 0 ? .userDefined : .default, allocationTime: alloc, writeTime: time,
                    bytes: size > 0 ? bytes : nil)
            }
            return FillValue(status: .default, allocationTime: alloc, writeTime: time, bytes: nil)
        default:
            throw HDF5Error(.corrupt, "fill value message", at: start, "fill value message version \(version)")
        }
    }
}

public struct Filter: Sendable, Equatable {
    public var id: UInt16
    public var name: String
    public var flags: UInt16
    public var clientData: [UInt32]

    public var isOptional: Bool { flags & 1 != 0 }

    /// libhdf5's names for its own filters; others keep the name stored in the file.
    static func knownName(_ id: UInt16) -> String? {
        switch id {
        case 1: return "deflate"
        case 2: return "shuffle"
        case 3: return "fletcher32"
        case 4: return "szip"
        case 5: return "nbit"
        case 6: return "scaleoffset"
        default: return nil
        }
    }

    static func parsePipeline(_ cursor: inout ByteCursor) throws -> [Filter] {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        let count = Int(try cursor.u8())
        guard count <= 32 else { throw HDF5Error(.corrupt, "filter pipeline message", at: start, "\(count) filters (HDF5 allows 32)") }
        switch version {
        case 1: try cursor.skip(6)
        case 2: break
        default: throw HDF5Error(.corrupt, "filter pipeline message", at: start, "filter pipeline version \(version)")
        }
        var filters: [Filter] = []
        for _ in 0..<count {
            let id = try cursor.u16()
            var nameLength = 0
            if version == 1 || id >= 256 { nameLength = Int(try cursor.u16()) }
            let flags = try cursor.u16()
            let valueCount = Int(try cursor.u16())
            var name = ""
            if nameLength > 0 {
                let raw = try cursor.take(version == 1 ? (nameLength + 7) / 8 * 8 : nameLength)
                name = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            var values: [UInt32] = []
            values.reserveCapacity(valueCount)
            for _ in 0..<valueCount { values.append(try cursor.u32()) }
            if version == 1 && valueCount % 2 == 1 { try cursor.skip(4) }
            filters.append(Filter(id: id, name: knownName(id) ?? name, flags: flags, clientData: values))
        }
        return filters
    }
}

/// Where a dataset's raw data lives (the data layout message).
public enum Layout: Sendable, Equatable {
    public enum ChunkIndex: Sendable, Equatable {
        case btreeV1(address: UInt64?)
        case singleChunk(address: UInt64?, filteredSize: UInt64?, filterMask: UInt32)
        case implicit(address: UInt64?)
        case fixedArray(address: UInt64?, pageBits: UInt8)
        case extensibleArray(
            address: UInt64?, maxBits: UInt8, indexElements: UInt8, minPointers: UInt8,
            minElements: UInt8, pageBits: UInt8)
        case btreeV2(address: UInt64?, nodeSize: UInt32, splitPercent: UInt8, mergePercent: UInt8)

        public var name: String {
            switch self {
            case .btreeV1: return "btree_v1"
            case .singleChunk: return "single"
            case .implicit: return "implicit"
            case .fixedArray: return "fixed_array"
            case .extensibleArray: return "extensible_array"
            case .btreeV2: return "btree_v2"
            }
        }
    }

    public struct Chunked: Sendable, Equatable {
        /// Chunk dimensions in elements (without the trailing element-size entry of the file).
        public var chunkShape: [UInt64]
        public var elementSize: UInt64
        public var index: ChunkIndex
        public var messageVersion: Int
        public var dontFilterPartialChunks: Bool

        public var chunkBytes: UInt64 { chunkShape.reduce(elementSize) { $0 &* $1 } }
    }

    case compact(bytes: [UInt8])
    case contiguous(address: UInt64?, size: UInt64)
    case chunked(Chunked)
    case virtual

    public var className: String {
        switch self {
        case .compact: return "compact"
        case .contiguous: return "contiguous"
        case .chunked: return "chunked"
        case .virtual: return "virtual"
        }
    }

    static func parse(_ cursor: inout ByteCursor) throws -> Layout {
        let start = cursor.absolutePosition
        let version = Int(try cursor.u8())
        func bad(_ detail: String) -> HDF5Error { HDF5Error(.corrupt, "data layout message", at: start, detail) }
        if version == 1 || version == 2 {
            let rank = Int(try cursor.u8())
            let layoutClass = try cursor.u8()
            try cursor.skip(5)
            guard rank >= 1 && rank <= 33 else { throw bad("dimensionality \(rank)") }
            var address: UInt64?
            if layoutClass != 0 { address = try cursor.address() }
            var dims: [UInt64] = []
            dims.reserveCapacity(rank)
            for _ in 0..<rank { dims.append(UInt64(try cursor.u32())) }
            switch layoutClass {
            case 0:
                let size = Int(try cursor.u32())
                return .compact(bytes: try cursor.take(size))
            case 1:
                return .contiguous(address: address, size: dims.reduce(1) { $0 &* $1 })
            case 2:
                return .chunked(
                    Chunked(
                        chunkShape: Array(dims.dropLast()), elementSize: dims.last!,
                        index: .btreeV1(address: address), messageVersion: version,
                        dontFilterPartialChunks: false))
            default:
                throw bad("layout class \(layoutClass)")
            }
        }
        guard version >= 3 && version <= 5 else { throw bad("data layout version \(version)") }
        let layoutClass = try cursor.u8()
        switch layoutClass {
        case 0:
            let size = Int(try cursor.u16())
            return .compact(bytes: try cursor.take(size))
        case 1:
            let address = try cursor.address()
            let size = try cursor.length()
            return .contiguous(address: address, size: size)
        case 2:
            if version == 3 {
                let rank = Int(try cursor.u8())
                guard rank >= 1 && rank <= 33 else { throw bad("dimensionality \(rank)") }
                let address = try cursor.address()
                var dims: [UInt64] = []
                dims.reserveCapacity(rank)
                for _ in 0..<rank { dims.append(UInt64(try cursor.u32())) }
                return .chunked(
                    Chunked(
                        chunkShape: Array(dims.dropLast()), elementSize: dims.last!,
                        index: .btreeV1(address: address), messageVersion: 3,
                        dontFilterPartialChunks: false))
            }
            let flags = try cursor.u8()
            let rank = Int(try cursor.u8())
            guard rank >= 1 && rank <= 33 else { throw bad("dimensionality \(rank)") }
            let dimSize = Int(try cursor.u8())
            guard dimSize >= 1 && dimSize <= 8 else { throw bad("dimension field size \(dimSize)") }
            var dims: [UInt64] = []
            dims.reserveCapacity(rank)
            for _ in 0..<rank { dims.append(try cursor.uint(size: dimSize)) }
            let indexType = try cursor.u8()
            let index: ChunkIndex
            switch indexType {
            case 1:
                var filteredSize: UInt64?
                var mask: UInt32 = 0
                if flags & 0x02 != 0 {
                    filteredSize = try cursor.length()
                    mask = try cursor.u32()
                }
                index = .singleChunk(address: try cursor.address(), filteredSize: filteredSize, filterMask: mask)
            case 2:
                index = .implicit(address: try cursor.address())
            case 3:
                let pageBits = try cursor.u8()
                index = .fixedArray(address: try cursor.address(), pageBits: pageBits)
            case 4:
                let maxBits = try cursor.u8(), indexElements = try cursor.u8(), minPointers = try cursor.u8()
                let minElements = try cursor.u8(), pageBits = try cursor.u8()
                index = .extensibleArray(
                    address: try cursor.address(), maxBits: maxBits, indexElements: indexElements,
                    minPointers: minPointers, minElements: minElements, pageBits: pageBits)
            case 5:
                let nodeSize = try cursor.u32(), split = try cursor.u8(), merge = try cursor.u8()
                index = .btreeV2(address: try cursor.address(), nodeSize: nodeSize, splitPercent: split, mergePercent: merge)
            default:
                throw bad("chunk index type \(indexType)")
            }
            return .chunked(
                Chunked(
                    chunkShape: Array(dims.dropLast()), elementSize: dims.last!, index: index,
                    messageVersion: version, dontFilterPartialChunks: flags & 0x01 != 0))
        case 3:
            return .virtual
        default:
            throw bad("layout class \(layoutClass)")
        }
    }
}

/// A link as stored in a link message or a dense-group heap object.
public struct Link: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        case hard(address: UInt64)
        case soft(path: String)
        case external(file: String, path: String)
        case userDefined(type: UInt8)
    }

    public var name: String
    public var target: Target
    public var creationOrder: UInt64?

    static func parse(_ cursor: inout ByteCursor) throws -> Link {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        guard version == 1 else { throw HDF5Error(.corrupt, "link message", at: start, "link message version \(version)") }
        let flags = try cursor.u8()
        var linkType: UInt8 = 0
        if flags & 0x08 != 0 { linkType = try cursor.u8() }
        var order: UInt64?
        if flags & 0x04 != 0 { order = try cursor.u64() }
        if flags & 0x10 != 0 { _ = try cursor.u8() }
        let nameLength = try cursor.count(size: 1 << Int(flags & 0x03), limit: 1 << 20, "link name length")
        guard nameLength > 0 else {
            throw HDF5Error(.corrupt, "link message", at: start, "link name length \(nameLength)")
        }
        let name = String(decoding: try cursor.take(nameLength), as: UTF8.self)
        let target: Target
        switch linkType {
        case 0:
            guard let address = try cursor.address() else {
                throw HDF5Error(.corrupt, "link message", at: start, "hard link \(name) has an undefined address")
            }
            target = .hard(address: address)
        case 1:
            let length = Int(try cursor.u16())
            target = .soft(path: String(decoding: try cursor.take(length), as: UTF8.self))
        case 64:
            let length = Int(try cursor.u16())
            var info = ByteCursor(
                try cursor.take(length), origin: cursor.absolutePosition - UInt64(length),
                structure: "external link", offsetSize: cursor.offsetSize, lengthSize: cursor.lengthSize)
            _ = try info.u8()
            let file = try info.cString()
            let path = try info.cString()
            target = .external(file: file, path: path)
        default:
            target = .userDefined(type: linkType)
        }
        return Link(name: name, target: target, creationOrder: order)
    }
}

/// Where a new-style group keeps links that outgrew its object header.
struct LinkInfo: Equatable {
    var fractalHeapAddress: UInt64?
    var nameIndexAddress: UInt64?
    var creationOrderIndexAddress: UInt64?

    static func parse(_ cursor: inout ByteCursor) throws -> LinkInfo {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        guard version == 0 else { throw HDF5Error(.corrupt, "link info message", at: start, "version \(version)") }
        let flags = try cursor.u8()
        if flags & 0x01 != 0 { _ = try cursor.u64() }
        let heap = try cursor.address()
        let name = try cursor.address()
        var order: UInt64?
        if flags & 0x02 != 0 { order = try cursor.address() }
        return LinkInfo(fractalHeapAddress: heap, nameIndexAddress: name, creationOrderIndexAddress: order)
    }
}

/// Where an object keeps attributes that outgrew its object header.
struct AttributeInfo: Equatable {
    var fractalHeapAddress: UInt64?
    var nameIndexAddress: UInt64?

    static func parse(_ cursor: inout ByteCursor) throws -> AttributeInfo {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        guard version == 0 else { throw HDF5Error(.corrupt, "attribute info message", at: start, "version \(version)") }
        let flags = try cursor.u8()
        if flags & 0x01 != 0 { _ = try cursor.u16() }
        let heap = try cursor.address()
        let name = try cursor.address()
        if flags & 0x02 != 0 { _ = try cursor.address() }
        return AttributeInfo(fractalHeapAddress: heap, nameIndexAddress: name)
    }
}

struct SymbolTableMessage: Equatable {
    var btreeAddress: UInt64
    var localHeapAddress: UInt64

    static func parse(_ cursor: inout ByteCursor) throws -> SymbolTableMessage {
        let start = cursor.absolutePosition
        guard let tree = try cursor.address(), let heap = try cursor.address() else {
            throw HDF5Error(.corrupt, "symbol table message", at: start, "undefined B-tree or heap address")
        }
        return SymbolTableMessage(btreeAddress: tree, localHeapAddress: heap)
    }
}

/// One segment of a dataset's raw data in another file: `size` bytes at `offset` of the file
/// `name` (as written, resolved by the reader); the segments in order make the data's bytes.
public struct ExternalFileSegment: Sendable, Equatable {
    public var name: String
    public var offset: UInt64
    /// Bytes of the data in this segment; nil for libhdf5's H5F_UNLIMITED (the rest of the data).
    public var size: UInt64?

    public init(name: String, offset: UInt64, size: UInt64?) {
        self.name = name
        self.offset = offset
        self.size = size
    }
}

/// The External Data Files message (0x0007): the dataset's bytes live in other files, listed
/// as slots whose names are in a local heap.
struct ExternalFileList: Equatable {
    struct Slot: Equatable {
        var nameOffset: UInt64
        var offset: UInt64
        var size: UInt64
    }

    var heapAddress: UInt64
    var slots: [Slot]

    static func parse(_ cursor: inout ByteCursor) throws -> ExternalFileList {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        guard version == 1 else { throw HDF5Error(.corrupt, "external file list message", at: start, "version \(version)") }
        try cursor.skip(3)
        let allocated = Int(try cursor.u16())
        let used = Int(try cursor.u16())
        guard used <= allocated else {
            throw HDF5Error(.corrupt, "external file list message", at: start, "\(used) slots used of \(allocated) allocated")
        }
        guard let heap = try cursor.address() else {
            throw HDF5Error(.corrupt, "external file list message", at: start, "undefined heap address")
        }
        // Each slot is three lengths: the message body bounds the count before any allocation.
        guard used * 3 * cursor.lengthSize <= cursor.remaining else {
            throw HDF5Error(.truncated, "external file list message", at: start, "\(used) slots in \(cursor.remaining) bytes")
        }
        var slots: [Slot] = []
        slots.reserveCapacity(used)
        for _ in 0..<used {
            slots.append(Slot(nameOffset: try cursor.length(), offset: try cursor.length(), size: try cursor.length()))
        }
        return ExternalFileList(heapAddress: heap, slots: slots)
    }
}

/// A message stored once elsewhere: in another object header (a committed datatype) or in the
/// file's shared-message heap. Version 1 (HDF5 1.6) names the object header through a symbol
/// table entry, version 2 through its address, version 3 through an address or a heap ID.
enum SharedMessageReference: Equatable {
    case objectHeader(address: UInt64)
    case sharedHeap(heapID: [UInt8])

    static func parse(_ cursor: inout ByteCursor) throws -> SharedMessageReference {
        let start = cursor.absolutePosition
        let version = try cursor.u8()
        let type = try cursor.u8()
        switch version {
        case 1:
            // HDF5 1.6 stores the committed object as a whole symbol table entry after six
            // reserved bytes: its link name offset (a length, unused here) comes before the
            // object header address, as libhdf5's H5O__shared_decode reads it.
            try cursor.skip(6)
            _ = try cursor.length()
            guard let address = try cursor.address() else { throw HDF5Error(.corrupt, "shared message", at: start, "undefined address") }
            return .objectHeader(address: address)
        case 2:
            guard let address = try cursor.address() else { throw HDF5Error(.corrupt, "shared message", at: start, "undefined address") }
            return .objectHeader(address: address)
        case 3:
            if type == 1 { return .sharedHeap(heapID: try cursor.take(8)) }
            guard let address = try cursor.address() else { throw HDF5Error(.corrupt, "shared message", at: start, "undefined address") }
            return .objectHeader(address: address)
        default:
            throw HDF5Error(.corrupt, "shared message", at: start, "shared message version \(version)")
        }
    }
}
