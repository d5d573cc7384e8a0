/// Where a binary floating-point number's sign, exponent and mantissa sit in its container, with
/// the exponent's bias; the mantissa's leading one is implied, as in IEEE 754. HDF5 files may
/// declare any such format (the n-bit filter packs shortened ones), and numpy reads only IEEE's.
/// It lives beside the bytes because both the parser (attribute values) and the model (the n-bit
/// decoder) convert through it.
public struct FloatFormat: Sendable, Hashable {
    public var signPosition: Int
    public var exponentPosition: Int
    public var exponentSize: Int
    public var mantissaPosition: Int
    public var mantissaSize: Int
    public var exponentBias: UInt64

    public init(signPosition: Int, exponentPosition: Int, exponentSize: Int, mantissaPosition: Int, mantissaSize: Int, exponentBias: UInt64) {
        self.signPosition = signPosition
        self.exponentPosition = exponentPosition
        self.exponentSize = exponentSize
        self.mantissaPosition = mantissaPosition
        self.mantissaSize = mantissaSize
        self.exponentBias = exponentBias
    }

    /// IEEE 754's binary16, binary32 or binary64 for a container of 2, 4 or 8 bytes.
    public static func ieee(bytes: Int) -> FloatFormat? {
        switch bytes {
        case 2: FloatFormat(signPosition: 15, exponentPosition: 10, exponentSize: 5, mantissaPosition: 0, mantissaSize: 10, exponentBias: 15)
        case 4: FloatFormat(signPosition: 31, exponentPosition: 23, exponentSize: 8, mantissaPosition: 0, mantissaSize: 23, exponentBias: 127)
        case 8: FloatFormat(signPosition: 63, exponentPosition: 52, exponentSize: 11, mantissaPosition: 0, mantissaSize: 52, exponentBias: 1023)
        default: nil
        }
    }

    /// Whether every field lies within `bits` bits and the fields do not overlap, so `value` reads
    /// a number rather than garbage.
    public func fits(bits: Int) -> Bool {
        let fields = [(signPosition, 1), (exponentPosition, exponentSize), (mantissaPosition, mantissaSize)]
        guard bits <= 64, exponentSize >= 1, exponentSize <= 32, mantissaSize >= 0, mantissaSize <= 63,
            fields.allSatisfy({ $0.0 >= 0 && $0.0 + $0.1 <= bits })
        else { return false }
        let sorted = fields.sorted { $0.0 < $1.0 }
        return zip(sorted, sorted.dropFirst()).allSatisfy { $0.0 + $0.1 <= $1.0 }
    }

    /// The number whose fields `bits` holds, as libhdf5's conversion to a native type reads it:
    /// an exponent of all ones is infinity (mantissa zero) or NaN, zero is zero or subnormal.
    /// Exact for mantissas of up to 52 bits; assumes `fits(bits:)`.
    public func value(_ bits: UInt64) -> Double {
        let negative = (bits >> UInt64(signPosition)) & 1 == 1
        let exponentMask: UInt64 = (1 << UInt64(exponentSize)) - 1
        let mantissaMask: UInt64 = mantissaSize == 0 ? 0 : (1 << UInt64(mantissaSize)) - 1
        let exponent = (bits >> UInt64(exponentPosition)) & exponentMask
        let mantissa = (bits >> UInt64(mantissaPosition)) & mantissaMask
        let magnitude: Double
        if exponent == exponentMask {
            magnitude = mantissa == 0 ? .infinity : .nan
        } else if exponent == 0 {
            magnitude = Double(sign: .plus, exponent: 1 - Int(exponentBias) - mantissaSize, significand: Double(mantissa))
        } else {
            let significand = Double((1 << UInt64(mantissaSize)) | mantissa)
            magnitude = Double(sign: .plus, exponent: Int(exponent) - Int(exponentBias) - mantissaSize, significand: significand)
        }
        return negative ? -magnitude : magnitude
    }

    /// The fields of the number nearest `value` (to nearest, ties away from zero), the inverse of
    /// `value(_:)`: beyond the largest exponent it is infinity, below the smallest subnormal zero.
    public func bits(_ value: Double) -> UInt64 {
        let sign: UInt64 = value.sign == .minus ? 1 << UInt64(signPosition) : 0
        let exponentMask: UInt64 = (1 << UInt64(exponentSize)) - 1
        let mantissaMask: UInt64 = mantissaSize == 0 ? 0 : (1 << UInt64(mantissaSize)) - 1
        func fields(_ exponent: UInt64, _ mantissa: UInt64) -> UInt64 {
            sign | exponent << UInt64(exponentPosition) | (mantissa & mantissaMask) << UInt64(mantissaPosition)
        }
        if value.isNaN { return fields(exponentMask, mantissaSize == 0 ? 0 : 1 << UInt64(mantissaSize - 1)) }
        let magnitude = value.magnitude
        if magnitude.isInfinite { return fields(exponentMask, 0) }
        if magnitude == 0 { return fields(0, 0) }
        var biased = Int(magnitude.exponent) + Int(exponentBias)
        if biased <= 0 {
            // Subnormal: magnitude = mantissa × 2^(1 - bias - mantissaSize).
            let scaled = Double(sign: .plus, exponent: Int(exponentBias) - 1 + mantissaSize, significand: magnitude).rounded(.toNearestOrAwayFromZero)
            let mantissa = UInt64(min(scaled, Double(1 << UInt64(mantissaSize))))
            return mantissa > mantissaMask ? fields(1, 0) : fields(0, mantissa)
        }
        var mantissa = UInt64(((magnitude.significand - 1) * Double(sign: .plus, exponent: mantissaSize, significand: 1)).rounded(.toNearestOrAwayFromZero))
        if mantissa > mantissaMask {
            mantissa = 0
            biased += 1
        }
        if UInt64(biased) >= exponentMask { return fields(exponentMask, 0) }
        return fields(UInt64(biased), mantissa)
    }
}
