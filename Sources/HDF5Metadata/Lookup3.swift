/// Bob Jenkins' lookup3 `hashlittle`, the checksum of every HDF5 version-2 structure.
enum Lookup3 {
    @inline(__always) private static func rotate(_ x: UInt32, _ k: UInt32) -> UInt32 { (x << k) | (x >> (32 - k)) }

    static func hash<C: RandomAccessCollection>(_ data: C, initial: UInt32 = 0) -> UInt32 where C.Element == UInt8, C.Index == Int {
        var a: UInt32 = 0xdead_beef &+ UInt32(truncatingIfNeeded: data.count) &+ initial
        var b = a
        var c = a
        var index = data.startIndex
        var remaining = data.count

        @inline(__always) func word(_ at: Int) -> UInt32 {
            UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24
        }

        while remaining > 12 {
            a &+= word(index)
            b &+= word(index + 4)
            c &+= word(index + 8)
            a &-= c; a ^= rotate(c, 4); c &+= b
            b &-= a; b ^= rotate(a, 6); a &+= c
            c &-= b; c ^= rotate(b, 8); b &+= a
            a &-= c; a ^= rotate(c, 16); c &+= b
            b &-= a; b ^= rotate(a, 19); a &+= c
            c &-= b; c ^= rotate(b, 4); b &+= a
            index += 12
            remaining -= 12
        }
        if remaining == 0 { return c }
        // The last 1 to 12 bytes, zero-padded to three words.
        @inline(__always) func tailByte(_ at: Int) -> UInt32 { at < remaining ? UInt32(data[index + at]) : 0 }
        @inline(__always) func tailWord(_ at: Int) -> UInt32 {
            tailByte(at) | tailByte(at + 1) << 8 | tailByte(at + 2) << 16 | tailByte(at + 3) << 24
        }
        a &+= tailWord(0)
        b &+= tailWord(4)
        c &+= tailWord(8)
        c ^= b; c &-= rotate(b, 14)
        a ^= c; a &-= rotate(c, 11)
        b ^= a; b &-= rotate(a, 25)
        c ^= b; c &-= rotate(b, 16)
        a ^= c; a &-= rotate(c, 4)
        b ^= a; b &-= rotate(a, 14)
        c ^= b; c &-= rotate(b, 24)
        return c
    }
}
