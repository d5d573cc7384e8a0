import Synchronization
import VirtualZarr

/// The directory tree a mount shows for one virtual dataset: directories, metadata files
/// rendered once, and chunk files that are never materialised (an array with ten million
/// chunks costs no more than its manifest). Pure: no FUSE, no I/O; the FUSE adapter and the
/// chunk read path sit on top of it.
public final class ZarrTree: Sendable {
    public enum Content: Sendable, Equatable {
        case directory
        /// Bytes held in memory: metadata documents and inline chunks.
        case bytes([UInt8])
        /// A stored chunk: `length` bytes at `offset` of object `object`, shown as stored or,
        /// with `decoding`, as the decoded bytes.
        case chunk(object: UInt32, offset: UInt64, length: UInt64, decoding: Decoding? = nil)
        /// A chunk of an array served on a grid of its own (`Regridding`): `size` bytes put
        /// together from the decoded source chunks it overlaps (see `assembly`).
        case assembled(array: Int, linear: Int, size: UInt64)
    }

    /// How a chunk file shown decoded is produced from its stored bytes.
    public struct Decoding: Sendable, Equatable {
        public var pipeline: [Codec]
        /// Bytes of the decoded chunk.
        public var size: UInt64
        /// Each file's packing, for variables served unpacked (`--decoded --unpack`).
        public var unpacking: Unpacking?
        /// Big-endian compound members served little-endian.
        public var byteSwap: ByteSwap?

        public init(pipeline: [Codec], size: UInt64, unpacking: Unpacking? = nil, byteSwap: ByteSwap? = nil) {
            self.pipeline = pipeline
            self.size = size
            self.unpacking = unpacking
            self.byteSwap = byteSwap
        }

        /// Bytes of the chunk file: the decoded chunk, or its values unpacked to float64.
        public var servedSize: UInt64 { unpacking?.unpackedSize(size) ?? size }
    }

    public struct Entry: Sendable, Equatable {
        public var inode: UInt64
        public var name: String
        public var content: Content

        public var size: UInt64 {
            switch content {
            case .directory: return 0
            case .bytes(let bytes): return UInt64(bytes.count)
            case .chunk(_, _, let length, let decoding): return decoding?.servedSize ?? length
            case .assembled(_, _, let size): return size
            }
        }
    }

    public static let rootInode: UInt64 = 1

    public let store: ZarrStore
    /// Named nodes (directories, metadata files, chunk-prefix directories of v3 arrays).
    private let nodes: [UInt64: Node]
    private let children: [UInt64: [String: UInt64]]
    /// Arrays by directory inode, and where each array's chunk inodes start.
    private let arrayByDirectory: [UInt64: Int]
    private let chunkInodeBase: [UInt64]
    private let firstChunkInode: UInt64
    /// Per array index: the decoding of its stored chunks when shown decoded.
    private let decodings: [Decoding?]
    /// Per array index, with `verify`: the decoding that checks a stored chunk shown as stored
    /// (pipelines with zlib, whose stream ends in an Adler-32, or Fletcher-32).
    private let verifications: [Decoding?]
    /// Per array index, for sparse manifests without a fill chunk: the set indices, sorted, so
    /// a listing costs what is stored rather than what the grid declares.
    private let sparseIndices: [[Int]?]
    /// More v3 chunk-prefix directories than this for one array are refused (they are nodes).
    public static let maxPrefixDirectories = 1 << 20

    private struct Node: Sendable {
        var name: String
        var parent: UInt64
        var content: Content
        /// For v3 chunk-prefix directories: the array and the coordinates so far.
        var chunkPrefix: (array: Int, coordinates: [Int])?
    }

    /// `decodedPipelines` names the arrays shown decoded (see `DecodedView`) and how their
    /// stored chunks are decoded.
    /// `unpackings` names the arrays served unpacked, with each file's packing.
    public init(
        _ store: ZarrStore, decodedPipelines: [String: [Codec]] = [:], unpackings: [String: Unpacking] = [:],
        byteSwaps: [String: ByteSwap] = [:], verify: Bool = false
    ) throws {
        self.store = store
        decodings = store.dataset.arrays.map { array in
            decodedPipelines[array.path].map { pipeline in
                let unpacking = unpackings[array.path]
                let elements = array.chunkShape.reduce(UInt64(1), *)
                return Decoding(
                    pipeline: pipeline, size: elements * UInt64(unpacking?.packed.itemSize ?? array.dtype.itemSize),
                    unpacking: unpacking, byteSwap: byteSwaps[array.path])
            }
        }
        verifications = store.dataset.arrays.map { array in
            guard verify, decodedPipelines[array.path] == nil, Codec.pipelineCarriesACheck(array.codecs) else { return nil }
            return Decoding(pipeline: array.codecs, size: UInt64(DecodedView.decodedChunkSize(array)))
        }
        var nodes: [UInt64: Node] = [Self.rootInode: Node(name: "", parent: Self.rootInode, content: .directory)]
        var children: [UInt64: [String: UInt64]] = [:]
        var next: UInt64 = 2
        func directory(_ path: [Substring]) -> UInt64 {
            var current = Self.rootInode
            for component in path {
                if let existing = children[current]?[String(component)] { current = existing; continue }
                let inode = next
                next += 1
                nodes[inode] = Node(name: String(component), parent: current, content: .directory)
                children[current, default: [:]][String(component)] = inode
                current = inode
            }
            return current
        }
        for (key, document) in try store.metadataDocuments().sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/")
            let parent = directory(Array(parts.dropLast()))
            let inode = next
            next += 1
            nodes[inode] = Node(name: String(parts.last!), parent: parent, content: .bytes(Array(document.rendered(pretty: true).utf8)))
            children[parent, default: [:]][String(parts.last!)] = inode
        }
        sparseIndices = store.dataset.arrays.map { array in
            array.regridding == nil && array.manifest.isSparse && array.manifest.fillChunk == nil ? array.manifest.setIndices : nil
        }
        var arrayByDirectory: [UInt64: Int] = [:]
        for (index, array) in store.dataset.arrays.enumerated() {
            let arrayDirectory = directory(array.path.split(separator: "/"))
            arrayByDirectory[arrayDirectory] = index
            if store.format == .v3 && !array.shape.isEmpty {
                // v3 keys are c/i/j/k: the prefix directories are real nodes, the leaves are not.
                var prefixDirectories = 0
                var levelSize = 1
                for extent in array.manifest.gridShape.dropLast() {
                    levelSize = levelSize.multipliedReportingOverflow(by: extent).overflow ? Int.max : levelSize * extent
                    prefixDirectories = prefixDirectories.addingReportingOverflow(levelSize).overflow ? Int.max : prefixDirectories + levelSize
                }
                guard prefixDirectories <= Self.maxPrefixDirectories else {
                    throw MappingError.tooManyPrefixDirectories(
                        path: array.path, gridShape: array.manifest.gridShape, count: prefixDirectories, max: Self.maxPrefixDirectories)
                }
                let c = directory(array.path.split(separator: "/") + ["c"])
                nodes[c]?.chunkPrefix = (index, [])
                var level: [(UInt64, [Int])] = [(c, [])]
                for axis in 0..<(array.manifest.gridShape.count - 1) {
                    var nextLevel: [(UInt64, [Int])] = []
                    for (parent, prefix) in level {
                        for coordinate in 0..<array.manifest.gridShape[axis] {
                            let inode = next
                            next += 1
                            nodes[inode] = Node(
                                name: String(coordinate), parent: parent, content: .directory,
                                chunkPrefix: (index, prefix + [coordinate]))
                            children[parent, default: [:]][String(coordinate)] = inode
                            nextLevel.append((inode, prefix + [coordinate]))
                        }
                    }
                    level = nextLevel
                }
            }
        }
        var bases: [UInt64] = []
        var total: UInt64 = 0
        for array in store.dataset.arrays {
            bases.append(total)
            total += UInt64(array.manifest.count)
        }
        self.nodes = nodes
        self.children = children
        self.arrayByDirectory = arrayByDirectory
        self.chunkInodeBase = bases
        self.firstChunkInode = next
    }

    /// How the stored chunk file `inode` is checked before it is served, under `verify`.
    public func verification(_ inode: UInt64) -> Decoding? {
        guard let (array, _) = chunk(inode) else { return nil }
        return verifications[array]
    }

    // MARK: Lookups

    /// Every inode the tree can hand out (named nodes and chunk files), for `statfs`.
    public var inodeCount: UInt64 {
        firstChunkInode - 1 + store.dataset.arrays.reduce(UInt64(0)) { $0 + UInt64($1.manifest.count) }
    }

    /// The slash-separated path of `inode` below the mount root, for log lines.
    public func path(_ inode: UInt64) -> String? {
        var components: [String] = []
        var current = inode
        while current != Self.rootInode {
            guard let entry = entry(current), let parent = parent(current) else { return nil }
            components.append(entry.name)
            current = parent
        }
        return components.reversed().joined(separator: "/")
    }

    public func entry(_ inode: UInt64) -> Entry? {
        if let node = nodes[inode] { return Entry(inode: inode, name: node.name, content: node.content) }
        guard let (array, linear) = chunk(inode) else { return nil }
        return chunkEntry(array: array, linear: linear)
    }

    public func parent(_ inode: UInt64) -> UInt64? {
        if let node = nodes[inode] { return node.parent }
        guard let (array, linear) = chunk(inode) else { return nil }
        return chunkParent(array: array, linear: linear)
    }

    public func lookup(_ parent: UInt64, _ name: String) -> Entry? {
        if let inode = children[parent]?[name] { return entry(inode) }
        guard let (array, prefix) = chunkContainer(parent) else { return nil }
        let manifest = store.dataset.arrays[array].manifest
        let coordinates: [Int]
        switch store.format {
        case .v2:
            if manifest.gridShape.isEmpty {
                guard name == "0" else { return nil }; coordinates = []
            } else {
                let parts = name.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.count == manifest.gridShape.count else { return nil }
                var values: [Int] = []
                for part in parts {
                    guard let value = Int(part), String(value) == part else { return nil }
                    values.append(value)
                }
                coordinates = values
            }
        case .v3:
            if manifest.gridShape.isEmpty {
                guard name == "c" else { return nil }; coordinates = []
            } else {
                guard let value = Int(name), String(value) == name else { return nil }
                coordinates = prefix + [value]
            }
        }
        guard let linear = manifest.linearIndex(coordinates),
            store.dataset.arrays[array].regridding != nil || manifest[linear] != .missing
        else { return nil }
        return chunkEntry(array: array, linear: linear)
    }

    /// Up to `limit` entries of directory `inode` from position `offset` (positions are stable, so
    /// a listing can resume). Chunk files are generated as they are listed.
    public func list(_ inode: UInt64, from offset: Int, limit: Int) -> [(position: Int, entry: Entry)] {
        var result: [(Int, Entry)] = []
        let named = (children[inode] ?? [:]).sorted { $0.key < $1.key }
        var position = offset
        while position < named.count, result.count < limit {
            if let entry = entry(named[position].value) { result.append((position + 1, entry)) }
            position += 1
        }
        guard result.count < limit, let (array, prefix) = chunkContainer(inode) else { return result }
        let manifest = store.dataset.arrays[array].manifest
        // Chunk files: walk the linear indexes under this prefix, skipping missing chunks.
        let (start, end) = linearRange(manifest, prefix: prefix)
        var linear = start + max(0, position - named.count)
        if store.dataset.arrays[array].regridding != nil {
            // Every chunk of a served grid exists: it is assembled when read.
            while result.count < limit, linear < end {
                if let entry = chunkEntry(array: array, linear: linear) { result.append((named.count + (linear - start) + 1, entry)) }
                linear += 1
            }
            return result
        }
        if let sorted = sparseIndices[array] {
            var index = lowerBound(sorted, linear)
            while index < sorted.count, sorted[index] < end, result.count < limit {
                if let entry = chunkEntry(array: array, linear: sorted[index]) { result.append((named.count + (sorted[index] - start) + 1, entry)) }
                index += 1
            }
            return result
        }
        while result.count < limit, let next = manifest.nextStored(from: linear, before: end) {
            if let entry = chunkEntry(array: array, linear: next) { result.append((named.count + (next - start) + 1, entry)) }
            linear = next + 1
        }
        return result
    }

    // MARK: Chunk files

    private func lowerBound(_ sorted: [Int], _ value: Int) -> Int {
        var low = 0, high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The directory that holds an array's chunk files (v2: the array directory; v3: the last
    /// prefix directory), with the coordinates its name path fixes.
    private func chunkContainer(_ inode: UInt64) -> (array: Int, prefix: [Int])? {
        if let array = arrayByDirectory[inode] {
            let manifest = store.dataset.arrays[array].manifest
            if store.format == .v2 || manifest.gridShape.isEmpty { return (array, []) }
            return nil
        }
        guard let node = nodes[inode], let (array, prefix) = node.chunkPrefix else { return nil }
        let rank = store.dataset.arrays[array].manifest.gridShape.count
        return prefix.count == rank - 1 ? (array, prefix) : nil
    }

    private func linearRange(_ manifest: ChunkManifest, prefix: [Int]) -> (Int, Int) {
        guard !prefix.isEmpty else { return (0, manifest.count) }
        let last = manifest.gridShape.last ?? 1
        let start = manifest.linearIndex(prefix + [0]) ?? 0
        return (start, start + last)
    }

    /// The inodes of the chunk files of the array whose chunk file `inode` is (consecutive, in
    /// row-major order); nil when `inode` is no chunk file.
    public func chunkFiles(containing inode: UInt64) -> ClosedRange<UInt64>? {
        guard let (array, _) = chunk(inode) else { return nil }
        let count = UInt64(store.dataset.arrays[array].manifest.count)
        let first = firstChunkInode + chunkInodeBase[array]
        return first...(first + count - 1)
    }

    private func chunk(_ inode: UInt64) -> (array: Int, linear: Int)? {
        guard inode >= firstChunkInode else { return nil }
        let index = inode - firstChunkInode
        var low = 0, high = chunkInodeBase.count - 1
        guard high >= 0 else { return nil }
        while low < high {
            let middle = (low + high + 1) / 2
            if chunkInodeBase[middle] <= index { low = middle } else { high = middle - 1 }
        }
        // Compared as UInt64: an inode far past the last chunk file must be "no entry", not a trap.
        let offset = index - chunkInodeBase[low]
        guard offset < UInt64(store.dataset.arrays[low].manifest.count) else { return nil }
        return (low, Int(offset))
    }

    private func chunkEntry(array: Int, linear: Int) -> Entry? {
        let value = store.dataset.arrays[array]
        let inode = firstChunkInode + chunkInodeBase[array] + UInt64(linear)
        let coordinates = value.manifest.coordinates(linear)
        let name = ZarrStore.chunkKeyComponents(store.format, coordinates).last!
        if value.regridding != nil {
            let size = value.chunkShape.reduce(UInt64(value.dtype.itemSize), *)
            return Entry(inode: inode, name: name, content: .assembled(array: array, linear: linear, size: size))
        }
        switch value.manifest[linear] {
        case .missing: return nil
        case .inline(let bytes): return Entry(inode: inode, name: name, content: .bytes(bytes))
        case .reference(let object, let offset, let length):
            return Entry(inode: inode, name: name, content: .chunk(object: object, offset: offset, length: length, decoding: decodings[array]))
        }
    }

    /// How the served chunk `linear` of a regridded array is put together: the pieces of source
    /// chunks it overlaps, its shape, element size and fill element.
    public func assembly(array: Int, linear: Int) -> Assembly? {
        let value = store.dataset.arrays[array]
        guard let regridding = value.regridding else { return nil }
        let pieces = regridding.pieces(coordinates: value.manifest.coordinates(linear), servedChunkShape: value.chunkShape, shape: value.shape)
        return Assembly(
            pieces: pieces, chunkShape: value.chunkShape, itemSize: value.dtype.itemSize,
            fill: value.fillBytes ?? [UInt8](repeating: 0, count: value.dtype.itemSize),
            sourceItemSize: regridding.sourceItemSize, unpacking: regridding.unpacking)
    }

    public struct Assembly: Sendable {
        public var pieces: [Regridding.Piece]
        public var chunkShape: [UInt64]
        /// The served element's size.
        public var itemSize: Int
        public var fill: [UInt8]
        /// A decoded source element's size (the packed type's when unpacking).
        public var sourceItemSize: Int
        /// Each file's packing, applied to its stored chunks after they are decoded.
        public var unpacking: Unpacking?
    }

    private func chunkParent(array: Int, linear: Int) -> UInt64? {
        let value = store.dataset.arrays[array]
        let directory = arrayByDirectory.first { $0.value == array }?.key
        guard store.format == .v3, !value.manifest.gridShape.isEmpty else { return directory }
        var current = directory.flatMap { children[$0]?["c"] }
        for coordinate in value.manifest.coordinates(linear).dropLast() {
            current = current.flatMap { children[$0]?[String(coordinate)] }
        }
        return current
    }
}
