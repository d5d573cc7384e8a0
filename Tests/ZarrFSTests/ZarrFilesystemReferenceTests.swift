import TestSupport
import Foundation
import JSONValue
import Logging
import VirtualZarr
import XCTest
@testable import ZarrFS

/// Objects held in memory; every fetch is checked against the object's bounds.
private final class ObjectsInMemory: ChunkFetching {
    let objects: [String: [UInt8]]
    init(_ objects: [String: [UInt8]]) { self.objects = objects }
    func fetch(_ object: ObjectInfo, offset: UInt64, length: UInt64) async throws -> [UInt8] {
        guard let bytes = objects[object.url], offset + length <= UInt64(bytes.count) else {
            throw ChunkFetchError(.changed, "\(object.url): gone")
        }
        return Array(bytes[Int(offset)..<Int(offset + length)])
    }
}

/// Random operation sequences against the filesystem core and a plain model of the tree (a
/// dictionary of paths to directories and file bytes, built from the store's documents and
/// chunks without the tree), as mountpoint-s3's reference tests do.
final class ZarrFilesystemReferenceTests: XCTestCase {
    private enum Node: Equatable {
        case directory
        case file([UInt8])
    }

    private let int16 = ZarrDataType.integer(size: 2, signed: true)

    /// Arrays of every kind of chunk file: stored (sparse), decoded (zlib), inline, scalar, an
    /// array whose unwritten chunks share a fill chunk, and one served on its own grid.
    private func dataset(objectBytes: inout [String: [UInt8]]) throws -> (VirtualDataset, [String: [Codec]]) {
        var object: [UInt8] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        var stored = ChunkManifest(gridShape: [3, 3])
        for linear in 0..<stored.count where linear != 4 {
            stored[linear] = .reference(object: 0, offset: UInt64(linear * 40), length: 16)
        }
        let a = VirtualArray(
            path: "a", dtype: int16, shape: [5, 7], chunkShape: [2, 4], codecs: [], fillValue: .int(-1), fillBytes: [255, 255],
            dimensionNames: ["y", "x"], attributes: [("units", .string("K"))], manifest: stored, origin: "test")
        let raw: [UInt8] = (0..<32).map { UInt8($0 * 3) }
        let deflated = try ChunkEncoder.encode(raw, pipeline: [.zlib(level: 4)])
        let deflatedOffset = object.count
        object += deflated
        var zlibManifest = ChunkManifest(gridShape: [2])
        zlibManifest[0] = .reference(object: 0, offset: UInt64(deflatedOffset), length: UInt64(deflated.count))
        let z = VirtualArray(
            path: "grp/z", dtype: int16, shape: [20], chunkShape: [16], codecs: [.zlib(level: 4)], fillValue: .null,
            fillBytes: [0, 0], dimensionNames: ["t"], attributes: [], manifest: zlibManifest, origin: "test")
        var inlineManifest = ChunkManifest(gridShape: [1])
        inlineManifest[0] = .inline([1, 0, 2, 0, 3, 0])
        let t = VirtualArray(
            path: "grp/t", dtype: int16, shape: [3], chunkShape: [3], codecs: [], fillValue: .null, fillBytes: nil,
            dimensionNames: ["t"], attributes: [], manifest: inlineManifest, origin: "test")
        var scalarManifest = ChunkManifest(gridShape: [])
        scalarManifest[0] = .inline([9, 0])
        let s = VirtualArray(
            path: "grp/deeper/s", dtype: int16, shape: [], chunkShape: [], codecs: [], fillValue: .null, fillBytes: nil,
            dimensionNames: [], attributes: [], manifest: scalarManifest, origin: "test")
        var filled = ChunkManifest(gridShape: [4])
        filled[1] = .reference(object: 0, offset: 100, length: 8)
        filled.fillMissing(with: [7, 0, 7, 0, 7, 0, 7, 0])
        let f = VirtualArray(
            path: "f", dtype: int16, shape: [16], chunkShape: [4], codecs: [], fillValue: .null, fillBytes: [7, 0],
            dimensionNames: ["w"], attributes: [], manifest: filled, origin: "test")
        var regridded = VirtualArray(
            path: "r", dtype: int16, shape: [5, 7], chunkShape: [3, 3], codecs: [], fillValue: .int(-1),
            fillBytes: [255, 255], dimensionNames: ["y", "x"], attributes: [], manifest: ChunkManifest(gridShape: [2, 3]),
            origin: "test")
        regridded.regridding = Regridding(
            sources: [
                Regridding.Source(
                    origin: [0, 0], shape: [5, 7], chunkShape: [2, 4], codecs: [],
                    manifest: stored, fillBytes: [255, 255])
            ], itemSize: 2)
        objectBytes["/data/a.nc"] = object
        let dataset = VirtualDataset(
            objects: [ObjectInfo(url: "/data/a.nc", size: UInt64(object.count), lastModified: 1_700_000_000)],
            groups: [
                VirtualGroup(path: "", attributes: [("title", .string("reference"))]),
                VirtualGroup(path: "grp", attributes: []), VirtualGroup(path: "grp/deeper", attributes: []),
            ],
            arrays: [a, z, t, s, f, regridded])
        return (dataset, ["grp/z": [.zlib(level: 4)]])
    }

    /// The model: every path the mount shows, from the store's documents and chunk keys, with
    /// the bytes each file holds (decoded where the array is shown decoded; a regridded array's
    /// chunks cut from its values directly).
    private func model(_ store: ZarrStore, objects: [String: [UInt8]], decoded: [String: [Codec]]) throws -> [String: Node] {
        var model: [String: Node] = ["": .directory]
        func addDirectories(_ path: String) {
            var components = path.split(separator: "/").dropLast()
            while !components.isEmpty {
                model[components.joined(separator: "/")] = .directory
                components = components.dropLast()
            }
        }
        for (key, document) in try store.metadataDocuments() {
            model[key] = .file(Array(document.rendered(pretty: true).utf8))
            addDirectories(key)
        }
        let object = objects["/data/a.nc"]!
        try store.forEachChunk { key, entry in
            let array = store.dataset.arrays.first {
                key.hasPrefix($0.path + "/") && !key.dropFirst($0.path.count + 1).contains(where: { $0 == "/" && store.format == .v2 })
            }!
            guard array.regridding == nil else { return }
            var bytes: [UInt8]
            switch entry {
            case .missing: return
            case .inline(let inline): bytes = inline
            case .reference(_, let offset, let length): bytes = Array(object[Int(offset)..<Int(offset + length)])
            }
            if let pipeline = decoded[array.path] {
                bytes = try ChunkDecoder.decode(bytes, pipeline: pipeline, decodedSize: Int(array.chunkShape.reduce(UInt64(2), *)))
            }
            model[key] = .file(bytes)
            addDirectories(key)
        }
        // The regridded array "r": values of "a" (element (i, j) from a's stored chunks), cut in 3 x 3.
        let a = store.dataset.arrays.first { $0.path == "a" }!
        func value(_ i: Int, _ j: Int) -> [UInt8] {
            guard i < 5, j < 7 else { return [255, 255] }
            guard case .reference(_, let offset, _) = a.manifest[a.manifest.linearIndex([i / 2, j / 4])!] else { return [255, 255] }
            let at = Int(offset) + ((i % 2) * 4 + j % 4) * 2
            return Array(object[at..<(at + 2)])
        }
        for ci in 0..<2 {
            for cj in 0..<3 {
                var bytes: [UInt8] = []
                for i in 0..<3 { for j in 0..<3 { bytes += value(ci * 3 + i, cj * 3 + j) } }
                let key = store.format == .v2 ? "r/\(ci).\(cj)" : "r/c/\(ci)/\(cj)"
                model[key] = .file(bytes)
                addDirectories(key)
            }
        }
        return model
    }

    private func children(_ model: [String: Node], of directory: String) -> Set<String> {
        Set(
            model.keys.compactMap { path in
                guard !path.isEmpty else { return nil }
                let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
                return parent == directory ? String(path.split(separator: "/").last!) : nil
            })
    }

    func testRandomOperationsAgreeWithTheModel() async throws {
        for format in ZarrFormat.allCases {
            var objects: [String: [UInt8]] = [:]
            let (dataset, decoded) = try dataset(objectBytes: &objects)
            let view = dataset
            let store = ZarrStore(view, format: format)
            let tree = try ZarrTree(store, decodedPipelines: decoded)
            let reader = ChunkReader(
                objects: dataset.objects, fetcher: ObjectsInMemory(objects), cacheBytes: 1 << 16, readahead: 2,
                neighbour: { [tree] in tree.entry($0) },
                assembly: { [tree] in tree.assembly(array: $0, linear: $1) })
            let filesystem = ZarrFilesystem(tree: tree, reader: reader, logger: Logger(label: "reftest"), status: { Array("{}".utf8) })
            let model = try model(store, objects: objects, decoded: decoded)
            let paths = model.keys.sorted()
            var inodes: [String: UInt64] = ["": ZarrTree.rootInode]
            var random = SplitMix64(state: 42 + UInt64(format.rawValue))

            /// The path's inode, found by lookups from the root as the kernel does.
            func resolve(_ path: String) throws -> UInt64 {
                if let known = inodes[path] { return known }
                let parent = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ""
                let name = String(path.split(separator: "/").last!)
                let attributes = try filesystem.lookup(parent: try resolve(parent), name: name).get()
                inodes[path] = attributes.inode
                return attributes.inode
            }

            for step in 0..<3000 {
                let path = paths.randomElement(using: &random)!
                let node = model[path]!
                let context = "v\(format.rawValue) step \(step): \(path.isEmpty ? "/" : path)"
                switch Int.random(in: 0..<7, using: &random) {
                case 0:
                    // lookup of a real child, or of a name that is not there.
                    guard case .directory = node else { continue }
                    let real = children(model, of: path)
                    let name =
                        Bool.random(using: &random)
                        ? (real.randomElement(using: &random) ?? "none") : ["zz", "0.9", ".zarray.bak", "c", "99"].randomElement(using: &random)!
                    let child = path.isEmpty ? name : path + "/" + name
                    let answer = filesystem.lookup(parent: try resolve(path), name: name)
                    switch model[child] {
                    case nil: XCTAssertEqual(answer.failureValue, .noEntry, "\(context): lookup \(name)")
                    case .directory?: XCTAssertEqual(try answer.get().isDirectory, true, "\(context): lookup \(name)")
                    case .file(let bytes)?:
                        let attributes = try answer.get()
                        XCTAssertFalse(attributes.isDirectory, context)
                        XCTAssertEqual(attributes.size, UInt64(bytes.count), "\(context): size of \(name)")
                    }
                case 1:
                    let attributes = try filesystem.getattr(try resolve(path)).get()
                    if case .file(let bytes) = node { XCTAssertEqual(attributes.size, UInt64(bytes.count), context) }
                    XCTAssertEqual(attributes.isDirectory, node == .directory, context)
                case 2:
                    // A whole listing in pages of random size.
                    let inode = try resolve(path)
                    guard case .directory = node else {
                        XCTAssertEqual(filesystem.readdir(inode, offset: 0, limit: 10).failureValue, .notADirectory, context)
                        continue
                    }
                    var names: [String] = []
                    var offset = 0
                    while true {
                        let page = try filesystem.readdir(inode, offset: offset, limit: Int.random(in: 1...5, using: &random)).get()
                        guard let last = page.last else { break }
                        for entry in page where entry.name != "." && entry.name != ".." {
                            let child = path.isEmpty ? entry.name : path + "/" + entry.name
                            if case .file(let bytes)? = model[child] { XCTAssertEqual(entry.attributes.size, UInt64(bytes.count), "\(context): \(entry.name)") }
                            inodes[child] = entry.attributes.inode
                        }
                        names += page.map(\.name)
                        offset = last.next
                    }
                    XCTAssertEqual(names.prefix(2), [".", ".."], context)
                    XCTAssertEqual(names.count, Set(names).count, "\(context): listed twice")
                    XCTAssertEqual(Set(names.dropFirst(2)), children(model, of: path), context)
                case 3, 4:
                    // A read at a random place, through the cache or a fetch.
                    let inode = try resolve(path)
                    guard case .file(let bytes) = node else {
                        XCTAssertEqual(filesystem.open(inode, writable: false).failureValue, .isADirectory, context)
                        continue
                    }
                    XCTAssertEqual(filesystem.open(inode, writable: true).failureValue, .readOnly, context)
                    let offset = Int.random(in: 0...(bytes.count + 2), using: &random)
                    let size = Int.random(in: 0...(bytes.count + 4), using: &random)
                    let got: [UInt8]
                    if let cached = filesystem.cachedRead(inode, offset: UInt64(offset), size: size) {
                        got = Array(try cached.get())
                    } else {
                        got = Array(try await filesystem.read(inode, offset: UInt64(offset), size: size).get())
                    }
                    let expected = offset < bytes.count ? Array(bytes[offset..<min(bytes.count, offset + size)]) : []
                    XCTAssertEqual(got, expected, "\(context): read \(size) at \(offset)")
                case 5:
                    let inode = try resolve(path)
                    let status = filesystem.getxattr(inode, name: ZarrFilesystem.statusAttribute, size: 100)
                    if path.isEmpty {
                        XCTAssertEqual(try status.get(), Array("{}".utf8), context)
                    } else {
                        XCTAssertEqual(status.failureValue, .noAttribute, context)
                    }
                    XCTAssertEqual(filesystem.getxattr(inode, name: "user.other", size: 100).failureValue, .noAttribute, context)
                default:
                    XCTAssertEqual(filesystem.getattr(UInt64.max - UInt64(step)).failureValue, .noEntry, context)
                    XCTAssertEqual(filesystem.statfs().bytes, dataset.objects[0].size, context)
                }
            }
        }
    }

    func testAChangedObjectIsStaleAndAStalledOneTimesOut() async throws {
        var objects: [String: [UInt8]] = [:]
        let (dataset, _) = try dataset(objectBytes: &objects)
        let tree = try ZarrTree(ZarrStore(dataset, format: .v2))
        let reader = ChunkReader(objects: dataset.objects, fetcher: ObjectsInMemory([:]), cacheBytes: 1 << 16)
        let filesystem = ZarrFilesystem(tree: tree, reader: reader, logger: Logger(label: "reftest"))
        let directory = try filesystem.lookup(parent: ZarrTree.rootInode, name: "a").get()
        let chunk = try filesystem.lookup(parent: directory.inode, name: "0.0").get()
        let answer = await filesystem.read(chunk.inode, offset: 0, size: 10)
        XCTAssertEqual(answer.failureValue, .stale)
        XCTAssertEqual(FilesystemError.stale.errno, ESTALE)
        XCTAssertEqual(FilesystemError(reading: ChunkFetchError(.timedOut, "slow")), .timedOut)
        XCTAssertEqual(FilesystemError(reading: ChunkReadError.undecodable(url: "a.nc", offset: 0, length: 1, reason: "corrupt")), .io)
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
