@testable import HDF5Metadata
import XCTest

final class ChecksumTests: XCTestCase {
    func testLookup3MatchesPublishedVectors() {
        XCTAssertEqual(Lookup3.hash([UInt8]()), 0xdead_beef)
        XCTAssertEqual(Lookup3.hash(Array("Four score and seven years ago".utf8)), 0x1777_0551)
        XCTAssertEqual(Lookup3.hash(Array("Four score and seven years ago".utf8), initial: 1), 0xcd62_8161)
    }
}

final class CursorTests: XCTestCase {
    func testReadsLittleEndianAndReportsTruncationWithOffset() throws {
        var cursor = ByteCursor([1, 0, 0, 0, 0xff, 0xff], origin: 100, structure: "test", offsetSize: 2, lengthSize: 4)
        XCTAssertEqual(try cursor.u32(), 1)
        XCTAssertNil(try cursor.address(), "all-ones is the undefined address")
        XCTAssertThrowsError(try cursor.u8()) { error in
            let error = error as! HDF5Error
            XCTAssertEqual(error.kind, .truncated)
            XCTAssertEqual(error.offset, 106)
            XCTAssertEqual(error.structure, "test")
        }
    }

    func testGridArithmetic() {
        XCTAssertEqual(downProducts([3, 4, 5]), [20, 5, 1])
        var coords: [UInt64] = [0, 3]
        increment(&coords, within: [2, 4])
        XCTAssertEqual(coords, [1, 0])
        XCTAssertEqual(encodedSize(of: 255), 1)
        XCTAssertEqual(encodedSize(of: 256), 2)
    }
}

final class ArrayIndexEntriesTests: XCTestCase {
    /// An extensible array of a (2, 3, 4)-chunk grid unlimited in its second dimension
    /// linearises over (3, 2, 4), that dimension first: linear 11 is (1, 0, 3) there, which is
    /// chunk (0, 1, 3) of the dataset.
    func testSegmentsBecomeTableRowsInTheDatasetsDimensionOrderAndAreReleased() {
        var first = ArrayIndexEntries()
        first.linear = [0, 11]
        first.addresses = [100, 200]
        var second = ArrayIndexEntries()
        second.linear = [23]
        second.addresses = [300]
        var segments = [first, second]
        var table = ChunkTable(rank: 3)
        table.append(consuming: &segments, down: downProducts([3, 2, 4]), leadingDimension: 1, chunkBytes: 96, base: 1000)
        XCTAssertTrue(segments.isEmpty)
        XCTAssertEqual(table.count, 3)
        XCTAssertEqual(Array(table.coordinates(of: 0)), [0, 0, 0])
        XCTAssertEqual(Array(table.coordinates(of: 1)), [0, 1, 3])
        // 23 is (2, 1, 3) in the linearisation: dataset chunk (1, 2, 3).
        XCTAssertEqual(Array(table.coordinates(of: 2)), [1, 2, 3])
        XCTAssertEqual(table.offsets, [1100, 1200, 1300])
        XCTAssertEqual(table.sizes, [96, 96, 96], "unfiltered entries are whole chunks")
        XCTAssertEqual(table.filterMasks, [0, 0, 0])
    }

    func testRoundsGroupItemsUpToTheElementBudget() {
        let budget = ArrayIndexEntries.elementsPerRound
        let groups = ArrayIndexEntries.rounds([budget / 2, budget / 2, 1, budget * 3, 5]) { $0 }
        XCTAssertEqual(groups, [[budget / 2, budget / 2], [1], [budget * 3], [5]])
        XCTAssertEqual(ArrayIndexEntries.rounds([UInt64]()) { $0 }, [])
    }
}

final class DatatypeTests: XCTestCase {
    func testNumpySpellings() {
        let layout = Datatype.FloatLayout(
            signPosition: 31, exponentPosition: 23, exponentSize: 8, mantissaPosition: 0,
            mantissaSize: 23, exponentBias: 127)
        XCTAssertEqual(Datatype.float(size: 4, order: .littleEndian, bitOffset: 0, precision: 32, layout: layout).numpyDtype, "<f4")
        XCTAssertEqual(Datatype.integer(size: 2, order: .bigEndian, signed: true, bitOffset: 0, precision: 16).numpyDtype, ">i2")
        XCTAssertEqual(Datatype.integer(size: 1, order: .littleEndian, signed: false, bitOffset: 0, precision: 8).numpyDtype, "|u1")
        XCTAssertEqual(Datatype.string(size: 16, padding: .nullTerminated, charset: .ascii).numpyDtype, "|S16")
        XCTAssertEqual(Datatype.variableLengthString(size: 16, padding: .nullTerminated, charset: .utf8).numpyDtype, "|O")
    }
}

final class ChunkTableOrderTests: XCTestCase {
    private func table(_ rows: [(UInt64, UInt64, offset: UInt64)]) -> ChunkTable {
        var table = ChunkTable(rank: 2)
        for row in rows { table.append(coordinates: [row.0, row.1], offset: row.offset, size: 10, filterMask: 0) }
        return table
    }

    func testChunksAreSortedRowMajorAndTheirColumnsMoveTogether() {
        var shuffled = table([(1, 0, 300), (0, 1, 200), (1, 1, 400), (0, 0, 100)])
        shuffled.sortByCoordinates()
        XCTAssertEqual(shuffled.coordinates, [0, 0, 0, 1, 1, 0, 1, 1])
        XCTAssertEqual(shuffled.offsets, [100, 200, 300, 400])
    }

    func testATableInOrderIsLeftAsItIsEvenWithRepeatedCoordinates() {
        let inOrder = table([(0, 0, 100), (0, 1, 200), (0, 1, 250), (1, 0, 300)])
        var sorted = inOrder
        sorted.sortByCoordinates()
        XCTAssertEqual(sorted, inOrder)
        // Repeated coordinates out of order elsewhere keep their relative order (a stable sort).
        var mixed = table([(1, 0, 300), (0, 1, 200), (0, 1, 250), (0, 0, 100)])
        mixed.sortByCoordinates()
        XCTAssertEqual(mixed.offsets, [100, 200, 250, 300])
    }
}

final class SharedMessageTests: XCTestCase {
    /// HDF5 1.6 writes a version 1 shared message: six reserved bytes, then a symbol table entry
    /// whose link name offset (a length) precedes the object header address.
    func testVersion1ReadsTheAddressAfterTheSymbolTableEntrysNameOffset() throws {
        let nameOffset: [UInt8] = [0x10, 0, 0, 0]
        let address: [UInt8] = [0x28, 0x07, 0, 0, 0, 0, 0, 0]
        let entryRest = [UInt8](repeating: 0, count: 4 + 4 + 16)
        let body: [UInt8] = [1, 0] + [UInt8](repeating: 0, count: 6) + nameOffset + address + entryRest
        var cursor = ByteCursor(body, origin: 500, structure: "shared message", offsetSize: 8, lengthSize: 4)
        XCTAssertEqual(try SharedMessageReference.parse(&cursor), .objectHeader(address: 0x728))
    }

    func testVersion2ReadsTheAddressDirectly() throws {
        let body: [UInt8] = [2, 2, 0x28, 0x07, 0, 0, 0, 0, 0, 0]
        var cursor = ByteCursor(body, origin: 500, structure: "shared message", offsetSize: 8, lengthSize: 8)
        XCTAssertEqual(try SharedMessageReference.parse(&cursor), .objectHeader(address: 0x728))
    }

    func testATruncatedVersion1MessageIsATypedErrorWithItsOffset() throws {
        let body: [UInt8] = [1, 0] + [UInt8](repeating: 0, count: 6) + [0, 0, 0, 0, 0, 0, 0, 0, 0x28, 0x07]
        var cursor = ByteCursor(body, origin: 500, structure: "shared message", offsetSize: 8, lengthSize: 8)
        XCTAssertThrowsError(try SharedMessageReference.parse(&cursor)) { error in
            let error = error as! HDF5Error
            XCTAssertEqual(error.kind, .truncated)
            XCTAssertEqual(error.offset, 516)
        }
    }
}

final class LocalHeapNameTests: XCTestCase {
    /// A local heap bounds its names by its own size: a 70,000-byte name in a larger heap reads
    /// whole; a name running off the heap's end is a truncation at the heap's offset.
    func testNamesLongerThan64KiBReadWholeWhenTheHeapHoldsThem() throws {
        let long = [UInt8](repeating: UInt8(ascii: "n"), count: 70_000)
        let heap = LocalHeap(data: [0] + long + [0] + Array("b".utf8) + [0, 0, 0, 0], dataOrigin: 4096)
        XCTAssertEqual(try heap.string(at: 1), String(repeating: "n", count: 70_000))
        XCTAssertEqual(try heap.string(at: 70_002), "b")
    }

    func testANameWithoutTerminatorInTheHeapIsATypedTruncation() throws {
        let heap = LocalHeap(data: [0] + [UInt8](repeating: UInt8(ascii: "n"), count: 70_000), dataOrigin: 4096)
        XCTAssertThrowsError(try heap.string(at: 1)) { error in
            let error = error as! HDF5Error
            XCTAssertEqual(error.kind, .truncated)
            XCTAssertEqual(error.structure, "local heap")
            XCTAssertEqual(error.offset, 4097, "the offset of the name that runs off the heap")
        }
    }
}

/// The External Data Files message on its own, hostile variants included.
final class ExternalFileListTests: XCTestCase {
    private func message(version: UInt8 = 1, allocated: UInt16, used: UInt16, slots: [(UInt64, UInt64, UInt64)]) -> [UInt8] {
        func le(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var bytes: [UInt8] = [version, 0, 0, 0] + le(UInt64(allocated), 2) + le(UInt64(used), 2) + le(0x400, 8)
        for slot in slots { bytes += le(slot.0, 8) + le(slot.1, 8) + le(slot.2, 8) }
        return bytes
    }

    func testTheMessageParsesItsSlots() throws {
        var cursor = ByteCursor(
            message(allocated: 4, used: 2, slots: [(8, 0, 40), (24, 100, UInt64.max)]), origin: 300, structure: "external file list message",
            offsetSize: 8, lengthSize: 8)
        let list = try ExternalFileList.parse(&cursor)
        XCTAssertEqual(list.heapAddress, 0x400)
        XCTAssertEqual(list.slots, [.init(nameOffset: 8, offset: 0, size: 40), .init(nameOffset: 24, offset: 100, size: UInt64.max)])
    }

    func testHostileMessagesGiveTypedErrorsWithOffsets() throws {
        let cases: [([UInt8], HDF5Error.Kind)] = [
            (message(version: 2, allocated: 1, used: 1, slots: [(0, 0, 4)]), .corrupt),
            (message(allocated: 1, used: 2, slots: [(0, 0, 4), (0, 0, 4)]), .corrupt),
            // 65,535 slots claimed in a message that holds one: refused before any allocation.
            (message(allocated: 65535, used: 65535, slots: [(0, 0, 4)]), .truncated),
        ]
        for (bytes, kind) in cases {
            var cursor = ByteCursor(bytes, origin: 300, structure: "external file list message", offsetSize: 8, lengthSize: 8)
            XCTAssertThrowsError(try ExternalFileList.parse(&cursor)) { error in
                let error = error as! HDF5Error
                XCTAssertEqual(error.kind, kind)
                XCTAssertEqual(error.offset, 300)
                XCTAssertEqual(error.structure, "external file list message")
            }
        }
    }
}
