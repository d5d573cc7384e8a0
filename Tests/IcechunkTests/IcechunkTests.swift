import XCTest

@testable import Icechunk

final class IcechunkObjectIDTests: XCTestCase {
    /// The id of every repository's first snapshot, as icechunk writes it.
    func testCrockfordBase32RoundTripsTheInitialSnapshotID() throws {
        let id = try XCTUnwrap(IcechunkObjectID("1CECHNKREP0F1RSTCMT0"))
        XCTAssertEqual(id.bytes.count, 12)
        XCTAssertEqual(id.description, "1CECHNKREP0F1RSTCMT0")
        XCTAssertEqual(IcechunkObjectID("1cechnkrep0f1rstcmt0")?.bytes, id.bytes, "lower case is the same id")
        XCTAssertEqual(IcechunkObjectID(bytes: [UInt8](repeating: 0xFF, count: 12)).description, "ZZZZZZZZZZZZZZZZZZZG")
        XCTAssertNil(IcechunkObjectID("1CECHNKREP0F1RSTCMT"), "19 characters")
        XCTAssertNil(IcechunkObjectID("1CECHNKREP0F1RSTCMTU"), "U is not Crockford")
        XCTAssertNil(IcechunkObjectID("ZZZZZZZZZZZZZZZZZZZZ"), "bits past the 96th must be zero")
    }
}

final class FlatBufferTests: XCTestCase {
    /// A table with a u32 field (index 0), an absent field (1) and a string (2), laid out by hand:
    /// root offset, vtable, table, string.
    func testTablesFieldsDefaultsAndStrings() throws {
        var bytes: [UInt8] = []
        func u16(_ v: UInt16) { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
        u32(20)  // the root table is at 20
        bytes += [0, 0, 0, 0]  // 4..8
        // The vtable at 8..18: its size 10, the table's size 12, field 0 at +4, field 1 absent,
        // field 2 at +8.
        u16(10); u16(12); u16(4); u16(0); u16(8)
        bytes += [0, 0]  // 18..20
        u32(UInt32(bitPattern: Int32(20 - 8)))  // table at 20: soffset to the vtable at 8
        u32(7)  // field 0 at 24
        u32(4)  // field 2 at 28: the string is at 28 + 4 = 32
        u32(5)
        bytes += Array("hello".utf8) + [0]
        let buffer = FlatBuffer(bytes, name: "test")
        let root = try buffer.root("root")
        XCTAssertEqual(try root.u32(0), 7)
        XCTAssertEqual(try root.u32(1, default: 42), 42, "an absent field has its default")
        XCTAssertEqual(try root.string(2), "hello")
        XCTAssertNil(try root.string(3), "a field past the vtable is absent")
    }

    func testOffsetsOutsideTheBufferAreTypedErrors() {
        // The root offset points past the end.
        XCTAssertThrowsError(try FlatBuffer([200, 0, 0, 0], name: "short").root("root")) { error in
            guard case IcechunkError.malformed(let file, _, _, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "short")
        }
        // A vtable offset that points before the buffer's start.
        XCTAssertThrowsError(try FlatBuffer([4, 0, 0, 0, 0xFF, 0xFF, 0, 0], name: "back").root("root"))
        XCTAssertThrowsError(try FlatBuffer([], name: "empty").root("root"))
    }

    func testAMetadataFileLargerThanTheLimitIsRefusedBeforeItIsRead() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("icechunk-limit-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let refs = root.appendingPathComponent("refs/branch.main")
        try FileManager.default.createDirectory(at: refs, withIntermediateDirectories: true)
        let text = #"{"snapshot":"1CECHNKREP0F1RSTCMT0"}"#
        try Data(text.utf8).write(to: refs.appendingPathComponent("ref.json"))
        var repository = IcechunkRepository.local(root.path)
        repository.metadataLimit = text.utf8.count - 1
        do {
            _ = try await repository.resolve(.branch("main"))
            XCTFail("a reference file larger than the limit was read")
        } catch let error as IcechunkError {
            guard case .fileTooLarge(let file, let size, let limit) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "refs/branch.main/ref.json")
            XCTAssertEqual(size, UInt64(text.utf8.count))
            XCTAssertEqual(limit, text.utf8.count - 1)
        }
        repository.metadataLimit = text.utf8.count
        let id = try await repository.resolve(.branch("main"))
        XCTAssertEqual(id.description, "1CECHNKREP0F1RSTCMT0")
    }
}
