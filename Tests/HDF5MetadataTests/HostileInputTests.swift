import TestSupport
import ByteSource
import HDF5Metadata
import XCTest

/// Truncated and mutated files must end in a typed error or a result — never a crash, a hang,
/// an unbounded allocation or a stack overflow.
final class HostileInputTests: XCTestCase {
    private func outcome(_ bytes: [UInt8], _ label: String) async throws -> Bool {
        let source = InMemorySource(name: label, bytes: bytes)
        return try await withDeadline(10, label) {
            do {
                _ = try await HDF5File.parse(source)
                return true
            } catch let error as HDF5FileError {
                XCTAssertEqual(error.file, label, "errors name the file")
                XCTAssertFalse(error.underlying.structure.isEmpty)
                return false
            }
        }
    }

    func testTruncationsGiveTypedErrors() async throws {
        var failures = 0
        var cases = 0
        for file in try TestData.fixtureFiles() {
            let bytes = try TestData.bytes(file)
            var lengths = Set([0, 1, 7, 8, 9, 40, 47, 48, 95, 96, 200, 511, 512, 513, 1024, 2047, 4096])
            for step in 1..<24 { lengths.insert(bytes.count * step / 24) }
            for length in lengths.sorted() where length < bytes.count {
                cases += 1
                if try await !outcome(Array(bytes.prefix(length)), "\(file.lastPathComponent)[..<\(length)]") { failures += 1 }
            }
        }
        XCTAssertGreaterThan(cases, 500)
        XCTAssertGreaterThan(failures, cases / 2, "most truncations must be detected")
    }

    func testByteMutationsGiveTypedErrorsOrResults() async throws {
        var random = SplitMix64(state: 0x5A52_524D_4F55_4E54)
        var cases = 0
        var errors = 0
        for file in try TestData.fixtureFiles() {
            let original = try TestData.bytes(file)
            // Metadata sits mostly in the first few kilobytes; aim most mutations there.
            let hot = min(original.count, 8192)
            for round in 0..<300 {
                var bytes = original
                let edits = 1 + random.below(4)
                for _ in 0..<edits {
                    let position = round % 3 == 0 ? random.below(original.count) : random.below(hot)
                    switch random.below(4) {
                    case 0: bytes[position] ^= UInt8(1 << random.below(8))
                    case 1: bytes[position] = 0xff
                    case 2: bytes[position] = 0
                    default: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                    }
                }
                cases += 1
                if try await !outcome(bytes, "\(file.lastPathComponent)#\(round)") { errors += 1 }
            }
        }
        XCTAssertGreaterThan(cases, 7500)
        XCTAssertGreaterThan(errors, 0)
    }

    func testGarbageIsNotHDF5() async throws {
        var random = SplitMix64(state: 42)
        let bytes = (0..<100_000).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        do {
            _ = try await HDF5File.parse(InMemorySource(name: "noise.bin", bytes: bytes))
            XCTFail("noise parsed as HDF5")
        } catch let error as HDF5FileError {
            XCTAssertEqual(error.underlying.kind, .notHDF5)
            XCTAssertTrue(error.description.hasPrefix("noise.bin: not an HDF5 file"), error.description)
        }
    }
}
