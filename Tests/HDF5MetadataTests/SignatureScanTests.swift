@testable import HDF5Metadata
import XCTest

final class SignatureScanTests: XCTestCase {
    func testEveryObjectHeaderSignatureIsFoundAtItsOffset() {
        var bytes = [UInt8](repeating: UInt8(ascii: "O"), count: 64)  // near misses everywhere
        for offset in [0, 5, 13, 60] { bytes.replaceSubrange(offset..<(offset + 4), with: Array("OHDR".utf8)) }
        bytes += Array("OHD".utf8)  // a signature cut off by the end of the bytes
        XCTAssertEqual(Traversal.EarlyDatasets.signatures(in: bytes), [0, 5, 13, 60])
        XCTAssertEqual(Traversal.EarlyDatasets.signatures(in: Array("OHD".utf8)), [])
        XCTAssertEqual(Traversal.EarlyDatasets.signatures(in: Array("OHDR".utf8)), [0])
    }
}
