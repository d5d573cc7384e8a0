import ByteSource
import XCTest

/// `FloatFormat` against Swift's own IEEE 754 types: reading a number's bits in IEEE's format
/// gives the number, and writing it gives the bits back, for every class of value.
final class FloatFormatTests: XCTestCase {
    func testIEEEFormatsReadAndWriteWhatSwiftsFloatsHold() throws {
        let single = try XCTUnwrap(FloatFormat.ieee(bytes: 4))
        let double = try XCTUnwrap(FloatFormat.ieee(bytes: 8))
        let half = try XCTUnwrap(FloatFormat.ieee(bytes: 2))
        var random = SystemRandomNumberGenerator()
        var singles: [Float] = [0, -0.0, 1, -1.5, .infinity, -.infinity, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, -3.0e-42]
        var doubles: [Double] = [0, -0.0, 2.5, .infinity, .leastNonzeroMagnitude, .leastNormalMagnitude, -.greatestFiniteMagnitude, 1e-310]
        for _ in 0..<2000 {
            singles.append(Float(bitPattern: random.next()))
            doubles.append(Double(bitPattern: random.next()))
        }
        for value in singles {
            let bits = UInt64(value.bitPattern)
            if value.isNaN {
                XCTAssertTrue(single.value(bits).isNaN)
                continue
            }
            XCTAssertEqual(single.value(bits), Double(value), "\(value)")
            XCTAssertEqual(single.bits(Double(value)), bits, "\(value)")
        }
        for value in doubles where !value.isNaN {
            XCTAssertEqual(double.value(value.bitPattern), value, "\(value)")
            XCTAssertEqual(double.bits(value), value.bitPattern, "\(value)")
        }
        for pattern in UInt16.min...UInt16.max {
            let value = Float16(bitPattern: pattern)
            if value.isNaN { continue }
            XCTAssertEqual(half.value(UInt64(pattern)), Double(value))
            XCTAssertEqual(half.bits(Double(value)), UInt64(pattern))
        }
    }

    /// HDF5's n-bit test format (test/dsets.c): sign at bit 26, a 6-bit exponent at 20 biased by
    /// 31, a 13-bit mantissa at 7. Values worked by hand: 1.5 is exponent 31, mantissa 0b1 << 12.
    func testAFormatOfItsOwnReadsAndWritesByItsFields() {
        let format = FloatFormat(signPosition: 26, exponentPosition: 20, exponentSize: 6, mantissaPosition: 7, mantissaSize: 13, exponentBias: 31)
        XCTAssertTrue(format.fits(bits: 32))
        XCTAssertFalse(format.fits(bits: 26))
        let oneAndAHalf: UInt64 = 31 << 20 | 1 << (12 + 7)
        XCTAssertEqual(format.value(oneAndAHalf), 1.5)
        XCTAssertEqual(format.bits(1.5), oneAndAHalf)
        XCTAssertEqual(format.value(oneAndAHalf | 1 << 26), -1.5)
        XCTAssertEqual(format.value(63 << 20), .infinity)
        XCTAssertTrue(format.value(63 << 20 | 1 << 7).isNaN)
        // The smallest subnormal: mantissa 1 with exponent 0 is 2^(1 - 31 - 13).
        XCTAssertEqual(format.value(1 << 7), Double(sign: .plus, exponent: -43, significand: 1))
        XCTAssertEqual(format.bits(Double(sign: .plus, exponent: -43, significand: 1)), 1 << 7)
        // Beyond the largest exponent (2^32 here) is infinity; below half the smallest subnormal, zero.
        XCTAssertEqual(format.bits(1e12), 63 << 20)
        XCTAssertEqual(format.bits(1e-20), 0)
        // Overlapping fields describe no number.
        XCTAssertFalse(
            FloatFormat(signPosition: 10, exponentPosition: 8, exponentSize: 6, mantissaPosition: 0, mantissaSize: 8, exponentBias: 31).fits(bits: 32))
    }
}
