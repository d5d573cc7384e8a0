import JSONValue
import XCTest

final class JSONRenderingTests: XCTestCase {
    func testStringsAreEscapedExactlyWhenTheyNeedIt() throws {
        let strings = [
            "http://h/WRFDS_2060-01-01.nc", "T2/0.0.0", "", "naïve °C ☃", "say \"hi\"", "back\\slash",
            "line\nbreak\ttab\rreturn", "bell\u{07}nul\u{00}", "mixed \"é\"\u{1F}",
        ]
        let rendered = JSON.array(strings.map { .string($0) }).rendered()
        XCTAssertEqual(
            rendered,
            #"["http://h/WRFDS_2060-01-01.nc","T2/0.0.0","","naïve °C ☃","say \"hi\"","back\\slash","line\nbreak\ttab\rreturn","bell\u0007nul\u0000","mixed \"é\"\u001f"]"#
        )
        XCTAssertEqual(try JSON.parse(rendered), JSON.array(strings.map { .string($0) }))
    }
}

final class JSONParsingTests: XCTestCase {
    func testObjectsKeepTheirKeyOrderAndPythonsNonFiniteLiteralsRead() throws {
        let value = try JSON.parse(#"{"z": 1, "a": [NaN, Infinity, -Infinity], "m": {"y": null, "b": true}}"#)
        guard case .object(let pairs) = value else { return XCTFail("not an object: \(value)") }
        XCTAssertEqual(pairs.map(\.0), ["z", "a", "m"], "the file's order, not sorted")
        XCTAssertEqual(value["a"], .array([.literal("NaN"), .literal("Infinity"), .literal("-Infinity")]))
        XCTAssertEqual(value["a"]?.arrayValue?.compactMap(\.doubleValue).map(\.description), ["nan", "inf", "-inf"])
        XCTAssertEqual(JSON.array([.double(-0.0), .double(0.0), .double(.nan)]).rendered(), #"[-0.0,0.0,"NaN"]"#)
        XCTAssertEqual(value["m"]?["b"], .bool(true))
        XCTAssertEqual(try JSON.parse(value.rendered()), value, "what is rendered parses back the same")
    }

    func testMalformedDocumentsNameTheByteWhereTheyGoWrong() {
        for (text, offset) in [(#"{"a": 1,, "b": 2}"#, 8), ("[1, 2", 5), (#"{"a" 1}"#, 5), ("nul", 0), ("[1] 2", 4)] {
            XCTAssertThrowsError(try JSON.parse(text), text) { error in
                XCTAssertEqual((error as? JSONParseError)?.offset, offset, "\(text): \(error)")
            }
        }
    }

    /// A hostile document nested a million levels deep is refused at 512, not a stack overflow.
    func testDeepNestingIsRefusedBeforeItExhaustsTheStack() {
        let text = String(repeating: "[", count: 1_000_000) + String(repeating: "]", count: 1_000_000)
        XCTAssertThrowsError(try JSON.parse(text)) { error in
            XCTAssertTrue("\(error)".contains("512"), "\(error)")
        }
    }
}
