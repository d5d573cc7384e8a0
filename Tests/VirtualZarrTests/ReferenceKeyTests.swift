import XCTest
import JSONValue
@testable import VirtualZarr

final class ReferenceKeyTests: XCTestCase {
    static let zarray =
        #"{\"shape\":[4],\"chunks\":[2],\"dtype\":\"<i2\",\"compressor\":null,\"filters\":null,\"fill_value\":0,\"order\":\"C\",\"zarr_format\":2}"#

    func document(_ extra: [String]) -> String {
        let base = [#"".zgroup": "{\"zarr_format\":2}""#, #""good/.zarray": "\#(Self.zarray)""#, #""good/0": ["a.nc", 0, 4]"#]
        return #"{"version": 1, "refs": {"# + (base + extra).joined(separator: ", ") + "}}"
    }

    func testEachKindOfBadKeyIsNamedAndSkipLeavesOnlyItsArrayOut() throws {
        let long = String(repeating: "x", count: 10_240)
        let cases: [(String, String)] = [
            (#""a\u0000b/.zarray": "\#(Self.zarray)""#, "NUL"),
            (#""/abs/.zarray": "\#(Self.zarray)""#, "starts with /"),
            (#""a//b/.zarray": "\#(Self.zarray)""#, "empty path component"),
            (#""../up/.zarray": "\#(Self.zarray)""#, ".. path component"),
            (#""./here/.zarray": "\#(Self.zarray)""#, ". path component"),
            (#""\#(long)/.zarray": "\#(Self.zarray)""#, "10240-byte path component"),
            (#""good/00": ["a.nc", 4, 4]"#, "same chunk as"),
            (#""good/x": ["a.nc", 4, 4]"#, "not a chunk name"),
            (#""good/sub/.zarray": "\#(Self.zarray)""#, "inside the array good"),
            (#""good/.zgroup": "{\"zarr_format\":2}""#, "both an array"),
        ]
        for (entry, problem) in cases {
            XCTAssertThrowsError(try KerchunkReferences.read(document([entry]), name: "r.json"), problem) { error in
                XCTAssertTrue("\(error)".contains(problem), "\(error) should say \(problem)")
                XCTAssertTrue("\(error)".hasPrefix("r.json: key "), "\(error)")
                XCTAssertLessThan("\(error)".count, 400, "a 10 KiB key is cut in the message")
            }
            let skipped = try KerchunkReferences.read(document([entry]), name: "r.json", badKeys: .skip)
            XCTAssertEqual(skipped.warnings.count, 1, "\(problem): \(skipped.warnings)")
            for array in skipped.arrays {
                XCTAssertFalse(array.path.contains("\0") || array.path.contains("..") || array.path.hasPrefix("/") || array.path.count > 255)
            }
            let good = skipped.arrays.first { $0.path == "good" }
            if problem.contains("same chunk") || problem.contains("not a chunk") || problem.contains("both") {
                XCTAssertNil(good, "\(problem): the array with the bad key is left out")
            } else {
                XCTAssertEqual(good?.manifest[0], .reference(object: 0, offset: 0, length: 4), problem)
            }
        }
    }

    func testNegativeAndOverflowingRangesSaySo() {
        for (entry, message) in [
            (#""good/1": ["a.nc", -4, 4]"#, "offset is negative"), (#""good/1": ["a.nc", 0, -1]"#, "length is negative"),
            (#""good/1": ["a.nc", 0.5, 1]"#, "not a whole number"),
            (#""good/1": ["a.nc", 18446744073709551615, 2]"#, "beyond any object"),
        ] {
            XCTAssertThrowsError(try KerchunkReferences.read(document([entry]), name: "r.json")) {
                XCTAssertTrue("\($0)".contains(message) && "\($0)".contains("good/1"), "\($0)")
            }
        }
    }

    func testTheFirstKeyOfEachObjectIsKept() throws {
        let contents = try KerchunkReferences.contents(document([#""good/1": ["b.nc", 0, 4]"#]))
        XCTAssertEqual(contents.dataset.objects.map(\.url), ["a.nc", "b.nc"])
        XCTAssertEqual(contents.firstKeys, ["good/0", "good/1"])
    }
}
