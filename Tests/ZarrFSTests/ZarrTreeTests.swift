import VirtualZarr
import XCTest
@testable import ZarrFS

final class ZarrTreeTests: XCTestCase {
    private func dataset(grid: [Int] = [3, 4]) -> VirtualDataset {
        var manifest = ChunkManifest(gridShape: grid)
        for linear in 0..<manifest.count where linear % 5 != 2 {
            manifest[linear] = .reference(object: 0, offset: UInt64(1000 + linear * 100), length: UInt64(90 + linear % 7))
        }
        let float = ZarrDataType.float(size: 4)
        let t2 = VirtualArray(
            path: "T2", dtype: float, shape: grid.map { UInt64($0 * 10) }, chunkShape: grid.map { _ in 10 }, codecs: [.zlib(level: 4)],
            fillValue: .null, fillBytes: [0, 0, 0, 0], dimensionNames: (0..<grid.count).map { "d\($0)" }, attributes: [],
            manifest: manifest, origin: "test")
        var scalarManifest = ChunkManifest(gridShape: [])
        scalarManifest[0] = .inline([1, 2, 3, 4])
        let scalar = VirtualArray(
            path: "grp/scalar", dtype: float, shape: [], chunkShape: [], codecs: [], fillValue: .null, fillBytes: nil,
            dimensionNames: [], attributes: [], manifest: scalarManifest, origin: "test")
        return VirtualDataset(
            objects: [ObjectInfo(url: "/data/a.nc", size: 10_000)],
            groups: [VirtualGroup(path: "", attributes: [("title", .string("t"))]), VirtualGroup(path: "grp", attributes: [])],
            arrays: [t2, scalar])
    }

    private func walk(_ tree: ZarrTree, _ inode: UInt64, _ prefix: String, into files: inout [String: ZarrTree.Entry]) {
        var offset = 0
        while true {
            let page = tree.list(inode, from: offset, limit: 3)
            if page.isEmpty { break }
            for (position, entry) in page {
                let path = prefix.isEmpty ? entry.name : prefix + "/" + entry.name
                if entry.content == .directory {
                    XCTAssertEqual(tree.parent(entry.inode), inode, path)
                    walk(tree, entry.inode, path, into: &files)
                } else {
                    XCTAssertNil(files[path], "listed twice: \(path)")
                    files[path] = entry
                    XCTAssertEqual(tree.parent(entry.inode), inode, path)
                }
                offset = position
            }
        }
    }

    func testV2TreeListsEveryStoredChunkAndMetadataFileOnce() throws {
        let store = ZarrStore(dataset(), format: .v2)
        let tree = try ZarrTree(store)
        var files: [String: ZarrTree.Entry] = [:]
        walk(tree, ZarrTree.rootInode, "", into: &files)
        let metadata = try store.metadataDocuments().map(\.key)
        var chunks: [String] = []
        try store.forEachChunk { key, _ in chunks.append(key) }
        XCTAssertEqual(Set(files.keys), Set(metadata + chunks))
        XCTAssertEqual(files["T2/1.1"]?.content, .chunk(object: 0, offset: 1500, length: 90 + 5 % 7))
        XCTAssertEqual(files["grp/scalar/0"]?.content, .bytes([1, 2, 3, 4]))
        XCTAssertNil(files["T2/0.2"], "missing chunks are absent")
        let zarray = try XCTUnwrap(files["T2/.zarray"])
        guard case .bytes(let bytes) = zarray.content else { return XCTFail("metadata is not bytes") }
        XCTAssertEqual(zarray.size, UInt64(bytes.count))
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("\"zlib\""))
        let inodes = files.values.map(\.inode)
        XCTAssertEqual(Set(inodes).count, inodes.count, "inodes are unique")
    }

    func testLookupsAgreeWithListingAndRejectOtherNames() throws {
        let tree = try ZarrTree(ZarrStore(dataset(), format: .v2))
        let t2 = try XCTUnwrap(tree.lookup(ZarrTree.rootInode, "T2"))
        let chunk = try XCTUnwrap(tree.lookup(t2.inode, "2.3"))
        XCTAssertEqual(tree.entry(chunk.inode), chunk, "inodes are stable")
        XCTAssertEqual(chunk.size, UInt64(90 + 11 % 7))
        for name in ["0.2", "3.0", "1", "1.1.1", "01.1", "-1.0", "a.b", ".zgroup"] {
            XCTAssertNil(tree.lookup(t2.inode, name), name)
        }
        XCTAssertNotNil(tree.lookup(t2.inode, ".zarray"))
        XCTAssertNil(tree.entry(999_999_999))
    }

    func testV3TreeNestsChunkKeys() throws {
        let store = ZarrStore(dataset(), format: .v3)
        let tree = try ZarrTree(store)
        var files: [String: ZarrTree.Entry] = [:]
        walk(tree, ZarrTree.rootInode, "", into: &files)
        var chunks: [String] = []
        try store.forEachChunk { key, _ in chunks.append(key) }
        XCTAssertEqual(Set(files.keys), Set(try store.metadataDocuments().map(\.key) + chunks))
        XCTAssertEqual(files["T2/c/1/1"]?.content, .chunk(object: 0, offset: 1500, length: 90 + 5 % 7))
        XCTAssertEqual(files["grp/scalar/c"]?.content, .bytes([1, 2, 3, 4]))
    }

    func testListingAHugeArrayStreams() throws {
        let tree = try ZarrTree(ZarrStore(dataset(grid: [10_000, 1_000]), format: .v2))
        let t2 = try XCTUnwrap(tree.lookup(ZarrTree.rootInode, "T2"))
        let page = tree.list(t2.inode, from: 5_000_000, limit: 4)
        XCTAssertEqual(page.count, 4)
        // Position 5,000,000 is past the 2 metadata files, so linear index 4,999,998 onwards.
        XCTAssertEqual(page.map(\.entry.name), ["4999.998", "4999.999", "5000.0", "5000.1"])
        XCTAssertEqual(page.map(\.position), [5_000_001, 5_000_002, 5_000_003, 5_000_004])
    }

    func testDecodedViewDropsCodecsAndSizesChunkFilesDecoded() throws {
        var stored = dataset()
        let fill = try ChunkEncoder.encode([UInt8](repeating: 0, count: 10 * 10 * 4), pipeline: [.zlib(level: 4)])
        stored.arrays[0].manifest[2] = .inline(fill)
        let view = try DecodedView(stored)
        XCTAssertEqual(view.pipelines, ["T2": [.zlib(level: 4)]])
        XCTAssertEqual(view.dataset.arrays[0].codecs, [])
        let store = ZarrStore(view.dataset, format: .v2)
        let tree = try ZarrTree(store, decodedPipelines: view.pipelines)
        var files: [String: ZarrTree.Entry] = [:]
        walk(tree, ZarrTree.rootInode, "", into: &files)
        XCTAssertEqual(
            files["T2/1.1"]?.content,
            .chunk(
                object: 0, offset: 1500, length: 90 + 5 % 7,
                decoding: .init(pipeline: [.zlib(level: 4)], size: 400)))
        XCTAssertEqual(files["T2/1.1"]?.size, 400)
        XCTAssertEqual(files["T2/0.2"]?.content, .bytes([UInt8](repeating: 0, count: 400)), "inline chunks are decoded once, up front")
        XCTAssertEqual(files["grp/scalar/0"]?.content, .bytes([1, 2, 3, 4]), "arrays without codecs are unchanged")
        guard case .bytes(let zarray)? = files["T2/.zarray"]?.content else { return XCTFail("no .zarray") }
        let text = String(decoding: zarray, as: UTF8.self)
        XCTAssertTrue(text.contains("\"compressor\": null") && text.contains("\"filters\": null"), text)
        XCTAssertEqual(tree.path(try XCTUnwrap(files["T2/1.1"]).inode), "T2/1.1")
    }

    func testAnArrayWithAForeignCodecStaysEncodedWithAWarning() throws {
        var stored = dataset()
        stored.arrays[0].codecs = [.other(.object([("id", .string("blosc"))]))]
        let view = try DecodedView(stored)
        XCTAssertEqual(view.pipelines, [:])
        XCTAssertEqual(view.dataset.arrays[0].codecs, stored.arrays[0].codecs)
        XCTAssertEqual(view.warnings.count, 1)
        XCTAssertTrue(view.warnings[0].contains("T2") && view.warnings[0].contains("blosc"), view.warnings[0])
    }
}
